"""hcdg: image-free domain generalization via CLIP for 3D hand pose estimation.

Stage one (`hcdg embed`) runs a frozen CLIP once over every source image and all
3,920 prompts of the paper's Table 2 into a feature store; stage two
(`hcdg train`) trains the hand pose network from those cached features.

Layout: `hcdg.pipeline` is *what* is computed (pure), `hcdg.stages` is *when*
(one file per stage), `hcdg.store` is *where the bytes live*.
"""

__version__ = "0.1.0"
