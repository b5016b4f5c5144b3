"""Table 2 prompts: count, order, ids, distinct strings, digest, user lists and filters."""

import pytest
from click.testing import CliRunner

from hcdg.cli import main
from hcdg.pipeline import prompts as P
from hcdg.pipeline.errors import HcdgError


def test_table2_count_order_and_ends():
    plist = P.table2_prompts()
    assert len(plist) == 3920 == P.N_TABLE2 == 7 * 7 * 2 * 20 * 2
    assert plist.ids == tuple(range(3920))
    assert plist.texts[0] == "a cropped image of white hand with mountain room"
    assert plist.texts[1] == "a cropped image of white hand with mountain background"
    assert plist.texts[2] == "a cropped image of white hand with lake room"
    assert plist.texts[-1] == "a photo of right black right hand with flower background"


def test_ids_follow_the_documented_formula():
    plist = P.table2_prompts()
    # head "one" (4), hand colour "pale yellow" (4), "right hand with" (1), "sky blue" (8), "room" (0)
    i = (((4 * 7 + 4) * 2 + 1) * 20 + 8) * 2 + 0
    assert plist.texts[i] == "one pale yellow right hand with sky blue room"
    for h, c, n, k, b in [(0, 0, 0, 0, 0), (6, 6, 1, 19, 1), (2, 5, 0, 13, 1)]:
        words = (P.HEADS[h], P.HAND_COLOURS[c], P.HANDS[n], P.COLOURS[k], P.BACKGROUNDS[b])
        assert plist.texts[(((h * 7 + c) * 2 + n) * 20 + k) * 2 + b] == " ".join(words)


def test_yellow_twice_gives_3724_distinct_strings_with_a_consistent_inverse():
    plist = P.table2_prompts()
    assert P.COLOURS.count("yellow") == 2
    distinct, inverse = plist.distinct()
    assert len(distinct) == 3724 == 3920 - 7 * 7 * 2 * 2
    assert len(set(distinct)) == len(distinct)
    assert [distinct[j] for j in inverse] == list(plist.texts)
    first, second = P.COLOURS.index("yellow"), 13
    a = ((0 * 2 + 0) * 20 + first) * 2
    b = ((0 * 2 + 0) * 20 + second) * 2
    assert plist.texts[a] == plist.texts[b] and inverse[a] == inverse[b]


def test_digest_is_stable_and_sensitive():
    plist = P.table2_prompts()
    # Pinned on purpose: stores name their prompt list by this digest, so a change to the
    # list (or to how it is hashed) must be a deliberate, visible change.
    assert plist.digest() == "4ed5a2a9a7861286db032bd1855a2db2b79b913874f73ca786bb27315942e5c1"
    assert P.table2_prompts().digest() == plist.digest()
    swapped = P.PromptList(plist.ids, (plist.texts[1], plist.texts[0], *plist.texts[2:]), "table2")
    renumbered = P.PromptList(tuple(i + 1 for i in plist.ids), plist.texts, "table2")
    assert len({plist.digest(), swapped.digest(), renumbered.digest()}) == 3


def test_filter_keeps_table2_ids(tmp_path):
    sub = P.filter_prompts(P.table2_prompts(), r"^one .* room$")
    assert len(sub) == 7 * 2 * 20  # one head, one background
    full = P.table2_prompts().texts
    assert all(full[i] == t for i, t in zip(sub.ids, sub.texts))
    assert sub.digest() != P.table2_prompts().digest()
    with pytest.raises(HcdgError, match="matches none"):
        P.filter_prompts(P.table2_prompts(), "zebra")
    with pytest.raises(HcdgError, match="not a valid regular expression"):
        P.filter_prompts(P.table2_prompts(), "(")


def test_prompt_file(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# my prompts\na photo of a hand\n\n  a drawing of a hand  \n", encoding="utf-8")
    plist = P.load_prompt_file(f)
    assert plist.texts == ("a photo of a hand", "a drawing of a hand") and plist.ids == (0, 1)
    assert plist.source == "file:p.txt"
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(HcdgError, match="holds no prompts"):
        P.load_prompt_file(tmp_path / "empty.txt")
    with pytest.raises(HcdgError, match="not found"):
        P.load_prompt_file(tmp_path / "missing.txt")


def test_prompts_command_prints_id_tab_text():
    res = CliRunner().invoke(main, ["prompts"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 3920
    assert lines[0] == "0\ta cropped image of white hand with mountain room"
    assert lines[3919] == "3919\ta photo of right black right hand with flower background"
    res = CliRunner().invoke(main, ["prompts", "--prompt-filter", "^a photo of right black right hand with flower"])
    assert res.output.splitlines() == ["3918\ta photo of right black right hand with flower room",
                                       "3919\ta photo of right black right hand with flower background"]

