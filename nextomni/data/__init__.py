"""OmniWorld: the procedural world (scenes, text, speech, video) the nano model learns from."""

from nextomni.data.world import Scene, Shape, random_scene, render

__all__ = ["Scene", "Shape", "random_scene", "render"]
