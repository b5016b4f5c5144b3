"""Stage one, `hcdg embed`: frozen CLIP over every image of a split and all prompts, once.

Streaming and resumable (docs/store.md):

* the prompts are encoded once per store (each distinct string once), skipped
  when the store already holds them;
* images are processed chunk by chunk (`chunk_rows` rows; the unit of resume and
  of sharding). Each chunk is cut into batches the same way on every run, so a
  resumed or sharded run computes every row exactly as an uninterrupted one does
  (bit-identical stores on the same device, precision and batch size);
* DataLoader workers decode and preprocess (the model's own open_clip transform)
  while the model runs; finished chunks go to a writer thread through a queue of
  at most `QUEUE_CHUNKS` chunks, so writes do not stall the model and memory
  stays bounded whatever N is;
* `--shard i/n` (or RANK/WORLD_SIZE under torchrun) takes the i-th of n
  contiguous chunk ranges; n processes, at once or one after another, give the
  same store as one.

* `--views K` (K > 0): rows are K augmented training crops per image (row i*K + v),
  rendered as `hcdg train` renders them and resized for CLIP as the authors do
  (`pipeline.views`), with each view's parameters in `view_params` (`store.views`).

Test hook (tests only, documented here): `HCDG_TEST_KILL_AFTER_CHUNKS=k` makes
the writer thread, after k chunks, write the next chunk's features *without*
its done flag and then SIGKILL its own process, so the kill-and-resume tests
hit the worst moment deterministically.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hcdg.pipeline.devices import resolve_device
from hcdg.pipeline.clip import DEFAULT_MODEL, TINY_MODEL, ClipEncoder, ImageRows
from hcdg.store.clip_weights import resolve_weights
from hcdg.pipeline.errors import HcdgError
from hcdg.pipeline.prompts import PromptList, select_prompts
from hcdg.store import fingerprint as fpr
from hcdg.store.feature_writer import SplitWriter, StoreWriter
from hcdg.store.features import DEFAULT_CHUNK_ROWS, check_split_key

#: Finished chunks waiting for the writer thread (bounds memory: 2 x chunk_rows x D floats).
QUEUE_CHUNKS = 2
KILL_HOOK = "HCDG_TEST_KILL_AFTER_CHUNKS"


@dataclass(frozen=True)
class EmbedConfig:
    """What `hcdg embed` computes and where it writes.

    Defaults: the paper's encoder (§3.2: OpenAI ViT-B/32, frozen) and prompts (Table 2).
    """

    dataset: Literal["freihand", "rhd", "stb"]  # (real on-disk formats; `hcdg synth` writes them too)
    root: str  # dataset root folder
    store: str  # Zarr folder, or HDF5 file when it ends in .h5
    split: str | None = None  # None: the reader's default (freihand training, rhd evaluation, stb test)
    key: str | None = None  # split key in the store; None: "<dataset>/<split>"
    cameras: tuple[str, ...] = ()  # STB only: camera views (reader default BB_left)
    # None: the encoder an existing store recorded (adding a split needs no --model again),
    # else DEFAULT_MODEL (paper §3.2: ViT-B/32).
    model: str | None = None
    pretrained: str | None = None  # None: the store's, else "openai" (paper §3.2) where the model has it, "none" for hcdg-tiny
    seed: int | None = None  # seed of random weights (pretrained "none"); None: the store's, else 0
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # (fp16 on CUDA, fp32 on CPU)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    batch_size: int = 256  # images per forward; fills a GPU, chunk-aligned (never spans chunks)
    workers: int | None = None  # DataLoader decode/preprocess processes; None: CPUs - 1 (1..16); 0: main process
    dtype: Literal["float16", "float32"] = "float16"  # stored dtype (issue #3: float16 default; float32 option)
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # rows per chunk (only when a split is created)
    shard: str | None = None  # "i/n": this process's share of the chunks; None: all (or torchrun rank)
    limit: int | None = None  # only the first N images of the split (recorded in its fingerprint)
    skip_corrupt: bool = False  # record unreadable images as skipped rows instead of failing
    prompt_file: str | None = None  # own prompt list, one per line (default: Table 2)
    prompt_filter: str | None = None  # regex keeping only matching prompts
    text_batch_size: int = 256  # prompts per text forward
    clip: str | None = None  # a synthetic-CLIP folder (`hcdg clip train --out`); replaces model/pretrained
    progress: bool = True  # tqdm progress bar with images/s
    # Augmented views per image (issue 19, docs/store.md "Views"): 0 = one feature of the whole
    # image, kept by measurement (docs/model.md "CLIP's view of a sample": K = 8 gains 2-3 mm on the
    # DG benchmark, inside the seed noise, and ties the store to one crop/augmentation); K > 0 = K
    # draws of the training augmentation, each crop rendered as training renders it.
    views: int = 0
    view_seed: int = 0  # seed of the view draws (recorded in the split fingerprint)
    # The training augmentation the views are drawn from: `hcdg train`'s preset ...
    view_preset: Literal["paper", "authors"] = "paper"
    view_config: str | None = None  # ... and config file (TOML, as `hcdg train --print-config` writes)

    def __post_init__(self) -> None:  # range checks before anything is opened or written
        from hcdg.pipeline.config import check_int_range, check_seed
        from hcdg.store.features import MAX_CHUNK_ROWS

        if self.seed is not None:
            check_seed(self.seed)
        check_int_range(self.chunk_rows, "--chunk-rows", 1, MAX_CHUNK_ROWS, "a chunk is held in memory")


@dataclass(frozen=True)
class EmbedSummary:
    key: str
    store: str
    rows: int
    complete_rows: int
    embedded: int
    skipped: int
    seconds: float  # the whole command
    image_seconds: float  # the image loop alone (DataLoader start to last chunk written)
    text_computed: bool
    n_prompts: int
    shard: tuple[int, int]
    random_weights: bool
    views: int = 0  # augmented views per image (rows = images x views); 0: whole images

    def line(self) -> str:
        rate = self.embedded / self.image_seconds if self.image_seconds > 0 else 0.0
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        what = f"{self.embedded} augmented views ({self.views} per image)" if self.views else f"{self.embedded} images"
        text = "encoded" if self.text_computed else "already present"
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        random = " (RANDOM weights)" if self.random_weights else ""
        return (f"embedded {what} of {self.key}{shard} in {self.seconds:.1f} s (images "
                f"{rate:.1f} img/s){skipped}; split {self.complete_rows}/{self.rows} rows complete; "
                f"{self.n_prompts} prompts {text}; store {self.store}{random}")


def parse_shard(shard: str | None) -> tuple[int, int]:
    """"i/n" -> (i, n); None -> torchrun's (RANK, WORLD_SIZE) when set, else (0, 1)."""
    if shard is None:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return (int(os.environ.get("RANK", "0") or 0), world) if world > 1 else (0, 1)
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise HcdgError(f"--shard {shard}: expected i/n, e.g. 0/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise HcdgError(f"--shard {shard}: expected 0 <= i < n")
    return i, n


def shard_chunks(n_chunks: int, shard: tuple[int, int]) -> range:
    """The contiguous chunk range of shard (i, n): chunks [i*C//n, (i+1)*C//n)."""
    i, n = shard
    return range(i * n_chunks // n, (i + 1) * n_chunks // n)


def resolve_pretrained(model: str, pretrained: str | None) -> str:
    if pretrained is not None:
        return pretrained
    if model == TINY_MODEL:
        return "none"
    if model.startswith(("local-dir:", "hf-hub:")):
        return ""
    import open_clip

    name = model.replace("/", "-")
    if name not in open_clip.list_models() or "openai" in open_clip.list_pretrained_tags_by_model(name):
        return "openai"  # (an unknown model is reported by `resolve_weights`)
    raise HcdgError(f"--model {model}: has no 'openai' weights; name them with --pretrained TAG|FILE|none")


def recorded_encoder(store: str | Path) -> tuple[str, str | None, int] | None:
    """(model, pretrained, seed) that rebuild the encoder an existing store recorded, or None
    when there is no finished store at `store` (or it names no usable weights path)."""
    from hcdg.store.features import read_meta

    if not Path(store).exists():
        return None
    try:
        meta = read_meta(store)
        enc = meta["fingerprint"]["encoder"]
        w = enc["weights"]
    except (HcdgError, KeyError, TypeError):
        return None
    recorded = meta.get("created", {}).get("weights_path")
    seed = int(w.get("seed", 0) or 0)
    if w.get("kind") == "random":
        return enc["model"], "none", seed
    if w.get("kind") == "tag":
        return enc["model"], w.get("tag"), seed
    if recorded:
        return (f"local-dir:{recorded}", None, seed) if w.get("kind") == "local-dir" else (enc["model"], recorded, seed)
    return None


def encoder_choice(cfg: EmbedConfig) -> tuple[str, str | None, int]:
    """(model, pretrained, seed) to embed with: what the config names; where it names no model,
    the existing store's recorded encoder (its pretrained / seed unless given), else DEFAULT_MODEL."""
    model, pretrained, seed = cfg.model, cfg.pretrained, cfg.seed
    if model is None:
        recorded = recorded_encoder(cfg.store)
        if recorded is not None:
            model = recorded[0]
            pretrained = recorded[1] if pretrained is None else pretrained
            seed = recorded[2] if seed is None else seed
        else:
            model = DEFAULT_MODEL
    return model, pretrained, 0 if seed is None else seed


def synthetic_clip_card(model: str, root: str, required: bool = False) -> dict[str, Any] | None:
    """The verified card when `model` is a synthetic-CLIP folder (`local-dir:DIR` with a card), else None.

    Refuses a synthetic dataset at `root` drawn at one of the CLIP corpus's seeds (it would share
    hand poses with the images the CLIP was trained on)."""
    from hcdg.pipeline.clip_corpus import overlapping_seeds
    from hcdg.store import clip_model as CM

    if not model.startswith("local-dir:"):
        return None
    folder = Path(model[len("local-dir:"):])
    if not required and not (folder / CM.CARD_FILE).is_file():
        return None  # another open_clip local-dir model
    card = CM.read_card(folder, "--clip")
    if Path(root, "hcdg_synth.json").is_file():
        header, _ = CM.read_style_records(root, "--root")
        clash = overlapping_seeds(card["corpus"]["seeds"], [header["seed"]])
        if clash:
            raise HcdgError(f"--root {root}: synthetic data at seed {clash[0]}, a seed of the CLIP's training corpus "
                            f"({folder}): the CLIP has seen these hand poses; re-synthesise at another --seed")
    return card


def chunk_batches(writer: SplitWriter, chunks: list[int], batch_size: int) -> Iterator[list[int]]:
    """Row-index batches, each inside one chunk, cut the same way on every run."""
    for c in chunks:
        rows = writer.rows(c)
        for start in range(rows.start, rows.stop, batch_size):
            yield list(range(start, min(start + batch_size, rows.stop)))


def _encode_prompts(encoder: ClipEncoder, prompts: PromptList, batch_size: int, progress: bool) -> tuple[np.ndarray, int]:
    from tqdm import tqdm

    distinct, inverse = prompts.distinct()
    parts = []
    for start in tqdm(range(0, len(distinct), batch_size), desc="prompts", unit="batch", disable=not progress,
                      file=sys.stderr):
        parts.append(encoder.encode_texts(distinct[start:start + batch_size], batch_size))
    feats = torch.cat(parts).numpy()
    return feats[np.asarray(inverse)], len(distinct)


class _ChunkWriterThread(threading.Thread):
    """Writes finished chunks off the model's thread; remembers the first error."""

    def __init__(self, writer: SplitWriter) -> None:
        super().__init__(name="hcdg-embed-writer", daemon=True)
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.error: BaseException | None = None
        self.written = 0
        hook = os.environ.get(KILL_HOOK)
        self.kill_after = int(hook) if hook else None

    def run(self) -> None:
        while (item := self.queue.get()) is not None:
            chunk, feats, errors, params = item
            if self.error is not None:
                continue
            try:
                if self.kill_after is not None and self.written >= self.kill_after:
                    g = self.writer.group  # test hook: the chunk's bytes land, its done flag never does
                    g["feats"][self.writer.rows(chunk).start:self.writer.rows(chunk).stop] = feats.astype(g["feats"].dtype)
                    os.kill(os.getpid(), signal.SIGKILL)
                if params is not None:  # the views' parameters and their sum, before the done flag
                    from hcdg.store import views as view_store

                    view_store.write_chunk_params(self.writer.group, self.writer.rows(chunk), chunk, params)
                self.writer.write_chunk(chunk, feats, errors)
                self.written += 1
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                self.error = exc

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def finish(self) -> None:
        self.queue.put(None)
        self.join()
        if isinstance(self.error, HcdgError):
            raise self.error
        if self.error is not None:
            raise HcdgError(f"writing the store failed: {type(self.error).__name__}: {self.error}") from self.error


@dataclass(frozen=True)
class ViewSetup:
    """The training augmentation `--views K` draws from (crop geometry, `GeomAug`, `ColorJitter`)."""

    k: int
    seed: int
    crop: Any
    geom: Any
    color: Any

    def fingerprint(self) -> dict[str, Any]:
        from hcdg.pipeline.views import views_fingerprint

        return views_fingerprint(self.k, self.seed, self.crop, self.geom, self.color)


def view_setup(cfg: EmbedConfig) -> ViewSetup | None:
    """The views of `cfg` (None for --views 0), from `TrainConfig.resolve(view_preset, view_config)`."""
    if cfg.views < 0:
        raise HcdgError(f"--views {cfg.views}: expected 0 (whole image) or a positive number of views")
    if cfg.views == 0:
        return None
    from hcdg.stages.train_config import TrainConfig

    if cfg.view_config is not None and not Path(cfg.view_config).is_file():
        raise HcdgError(f"--view-config {cfg.view_config}: no such training config file (TOML)")
    train = TrainConfig.resolve(cfg.view_preset, cfg.view_config, where="--view-config")
    if not train.augment:
        raise HcdgError("--views: the training config has augment = false; views replay the training "
                        "augmentation, so embed without --views")
    return ViewSetup(cfg.views, cfg.view_seed, train.crop_config(), train.geom, train.color)


def _open_dataset(cfg: EmbedConfig) -> Any:
    from hcdg.pipeline.datasets import open_dataset

    if not Path(cfg.root).is_dir():
        raise HcdgError(f"--root {cfg.root}: dataset root folder not found")
    options = {"cameras": tuple(cfg.cameras)} if cfg.cameras else {}
    if cfg.cameras and cfg.dataset != "stb":
        raise HcdgError("--camera: only for --dataset stb")
    return open_dataset(cfg.dataset, Path(cfg.root), cfg.split, **options), options


def run(cfg: EmbedConfig, *, dataset: Any = None) -> EmbedSummary:
    """Embed the prompts (once per store) and every image of one split into `cfg.store`.

    `dataset` (a `HandDataset`) replaces opening `cfg.dataset` at `cfg.root` when given.
    One process per store and shard (`feature_writer.shard_lock`): shards still run in parallel.
    """
    from hcdg.store.atomic import naming
    from hcdg.store.feature_writer import shard_lock

    from hcdg.store.feature_writer import discard_unfinished, is_h5, staging_path

    new = (parse_shard(cfg.shard)[1] == 1 and not Path(cfg.store).exists()  # shards may share a new store
           and not (is_h5(cfg.store) and staging_path(cfg.store).exists()))
    try:
        with shard_lock(cfg.store, parse_shard(cfg.shard)), naming(cfg.store):  # e.g. a full disk names the store
            return _run(cfg, dataset)
    except Exception:
        if new:  # a store this command created, failed before its first chunk: leave nothing behind
            discard_unfinished(cfg.store)
        raise


def _run(cfg: EmbedConfig, dataset: Any) -> EmbedSummary:
    t0 = time.perf_counter()
    shard = parse_shard(cfg.shard)
    if cfg.batch_size < 1 or (cfg.workers or 0) < 0 or (cfg.limit is not None and cfg.limit < 1):
        raise HcdgError("--batch-size and --limit must be positive, --workers >= 0")
    views = view_setup(cfg)
    device = resolve_device(cfg.device)
    precision = cfg.precision if cfg.precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    if precision == "fp16" and device.type == "cpu":
        raise HcdgError("--precision fp16 needs a GPU (--device cuda); use fp32 or bf16 on the CPU")
    model, pretrained, seed = encoder_choice(cfg)
    if cfg.clip is not None:
        if cfg.model is not None or cfg.pretrained is not None:
            raise HcdgError("--clip: names the model and its weights; drop --model/--pretrained")
        model, pretrained = f"local-dir:{Path(cfg.clip).expanduser().resolve()}", ""
    synthetic = synthetic_clip_card(model, cfg.root, required=cfg.clip is not None)
    # Weights first: a missing file fails in well under a second, before any dataset scan.
    source = resolve_weights(model, resolve_pretrained(model, pretrained))
    prompts = select_prompts(cfg.prompt_file, cfg.prompt_filter)
    options: dict[str, Any] = {}
    if dataset is None:
        dataset, options = _open_dataset(cfg)
    key = check_split_key(cfg.key or f"{dataset.dataset}/{dataset.split}")
    n = len(dataset) if cfg.limit is None else min(cfg.limit, len(dataset))
    ids = [dataset.sample_id(i) for i in range(n)]
    if getattr(dataset, "cameras", None) is not None:
        # The cameras the reader resolved (explicit or default), so both spellings match.
        options = {**options, "cameras": tuple(dataset.cameras)}
    # A limit at or above the split's size changes nothing: record it as no limit.
    limit = cfg.limit if cfg.limit is not None and cfg.limit < len(dataset) else None
    split_fp = fpr.split_fingerprint(dataset.manifest(), dataset=dataset.dataset, split=dataset.split,
                                     options=options, limit=limit)
    if views is not None:  # rows i*K + v; the sample id repeats K times
        split_fp["views"] = views.fingerprint()
        ids = [sid for sid in ids for _ in range(views.k)]
    # The encoder is built (a bad weights file fails here) before the store is touched.
    encoder = ClipEncoder(source, seed=seed, precision=precision, device=device)
    identity = encoder.identity()
    if synthetic is not None:
        from hcdg.store.clip_model import identity_of

        identity["synthetic_clip"] = identity_of(synthetic)
    store_fp = fpr.store_fingerprint(identity, prompts.digest(), len(prompts), cfg.dtype)
    weights_at = str(encoder.source.path.resolve()) if encoder.source.path else None
    store = StoreWriter(cfg.store, store_fp, encoder.embed_dim, created={"weights_path": weights_at})
    text_computed = store.ensure_text(list(prompts.ids), list(prompts.texts), prompts.source,
                                      lambda: _encode_prompts(encoder, prompts, cfg.text_batch_size, cfg.progress))
    provenance = {"root": str(Path(dataset.root).resolve()), "hcdg_argv": sys.argv[1:], "torch": torch.__version__,
                  "device": str(device), "batch_size": cfg.batch_size,
                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    writer = store.open_split(key, ids, cfg.chunk_rows, split_fp, provenance)
    embedded = skipped = 0
    t_images = time.perf_counter()
    if writer is not None:
        done = writer.done()
        todo = [c for c in shard_chunks(writer.n_chunks, shard) if not done[c]]
        if views is not None:
            from hcdg.pipeline.views import VIEW_PARAMS
            from hcdg.store import views as view_store
            from hcdg.store.feature_writer import store_lock

            with store_lock(store.path):
                view_store.ensure_arrays(writer.group, writer.n_rows, writer.chunk_rows, writer.n_chunks,
                                         len(VIEW_PARAMS))
        embedded, skipped = _embed_chunks(cfg, dataset, encoder, writer, todo, device, views)
    t_images = time.perf_counter() - t_images
    store.export_h5()
    from hcdg.store.features import store_info

    info = {s["key"]: s for s in store_info(cfg.store)["splits"]}[key]
    return EmbedSummary(key=key, store=str(cfg.store), rows=info["rows"], complete_rows=info["complete_rows"],
                        embedded=embedded, skipped=skipped, seconds=time.perf_counter() - t0, image_seconds=t_images,
                        text_computed=text_computed, n_prompts=len(prompts), shard=shard,
                        random_weights=identity["weights"]["kind"] == "random", views=cfg.views)


def _embed_chunks(cfg: EmbedConfig, dataset: Any, encoder: ClipEncoder, writer: SplitWriter, todo: list[int],
                  device: torch.device, views: ViewSetup | None = None) -> tuple[int, int]:
    """Run the model over chunks `todo`; returns (rows embedded, rows skipped)."""
    from hcdg.stages import progress

    if not todo:
        return 0, 0
    k = views.k if views is not None else 1
    paths = [dataset.image_path(i) for i in range(writer.n_rows // k)]
    if views is None:
        rows_ds = ImageRows(paths, encoder.preprocess, encoder.image_size)
    else:  # each row a rendered training crop, resized for CLIP as the authors do (pipeline.views)
        from hcdg.pipeline.views import ViewRows

        pp = encoder.model.visual.preprocess_cfg
        rows_ds = ViewRows(dataset, views.crop, views.geom, views.color, views.seed, k, encoder.image_size,
                           pp["mean"], pp["std"])
    thread_params = _params_of(views, writer)
    # Default: every core but the one feeding the model (JPEG decoding is the usual bottleneck on a GPU).
    workers = min(16, max(1, (os.cpu_count() or 2) - 1)) if cfg.workers is None else cfg.workers
    loader = torch.utils.data.DataLoader(
        rows_ds, batch_sampler=list(chunk_batches(writer, todo, cfg.batch_size)), num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers else None, worker_init_fn=_worker_init,
    )
    thread = _ChunkWriterThread(writer)
    thread.start()
    total = sum(len(writer.rows(c)) for c in todo)
    bar = progress.bar(total, f"embed {dataset.dataset}/{dataset.split}", "img", enabled=cfg.progress,
                       rate_unit="images", smoothing=0.1)  # a status line every 30 s off a terminal
    chunk = -1
    buf: np.ndarray | None = None
    errors: list[str] = []
    skipped = 0
    try:
        for index, pixels, errs in loader:
            first = int(index[0])
            if buf is None:
                chunk = first // writer.chunk_rows
                buf, errors = np.empty((len(writer.rows(chunk)), encoder.embed_dim), np.float32), []
            feats = encoder.encode_images(pixels).cpu().numpy()
            for row, err in zip(index.tolist(), errs):
                if err and not cfg.skip_corrupt:
                    raise HcdgError(f"{paths[row // k]}: unreadable image ({err}); fix or remove it, or pass "
                                    "--skip-corrupt to record it as a skipped row")
                skipped += bool(err)
            off = first - writer.rows(chunk).start
            buf[off:off + len(feats)] = feats
            errors.extend(errs)
            bar.update(len(feats))
            if off + len(feats) == buf.shape[0]:
                thread.put((chunk, buf, errors, thread_params(chunk)))
                buf = None
    finally:
        bar.close()
        thread.finish()  # chunks finished so far are written whatever happened
    return total, skipped


def _params_of(views: ViewSetup | None, writer: SplitWriter) -> Any:
    """chunk -> its rows' view parameters (rows, 7) float32 (the same draws `ViewRows` rendered), or None."""
    from hcdg.pipeline.views import draw_view

    def params(chunk: int) -> np.ndarray | None:
        if views is None:
            return None
        return np.stack([draw_view(views.geom, views.color, views.seed, *divmod(r, views.k))
                         for r in writer.rows(chunk)])
    return params


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decode/preprocess workers: one thread each, the model gets the cores
