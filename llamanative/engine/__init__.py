"""The engine: owns llama.cpp contexts and runs generation on them."""

from .generate import GenerationStep, generate_step

__all__ = ["GenerationStep", "generate_step"]
