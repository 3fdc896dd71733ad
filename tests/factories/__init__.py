"""The tests' one set of factories: small functions with keyword overrides for GPU nodes (from the
simulated fleet's catalogue), QuantizedModel and BenchmarkRun owners, specs and objects, the
helpers that read those objects on a real API server, the tiny tokenizer, and GuideLLM's mock
server. Import them from here: `from factories import make_node, make_spec`."""

from factories.gpus import (
    DEV_FLEET,
    DEV_INVENTORY,
    GPU_CATALOG,
    GPU_TAINT,
    gpu_spec,
    make_fleet,
    make_inventory,
    make_node,
)
from factories.mock_server import (
    FEW_GUIDELLM_WORKERS,
    MOCK_ITL_MS,
    MOCK_MODEL,
    MOCK_TTFT_MS,
    guidellm_mock_server,
)
from factories.objects import Models, Runs
from factories.resources import (
    ARTIFACT_ID,
    make_benchmark_run,
    make_owner,
    make_plan,
    make_quantized_model,
    make_run_owner,
    make_run_spec,
    make_spec,
    quantized_model_spec,
)
from factories.tokenizer import build_tokenizer, make_text_tokenizer, train_bpe

__all__ = [
    "ARTIFACT_ID",
    "DEV_FLEET",
    "DEV_INVENTORY",
    "FEW_GUIDELLM_WORKERS",
    "GPU_CATALOG",
    "GPU_TAINT",
    "MOCK_ITL_MS",
    "MOCK_MODEL",
    "MOCK_TTFT_MS",
    "Models",
    "Runs",
    "build_tokenizer",
    "gpu_spec",
    "guidellm_mock_server",
    "make_benchmark_run",
    "make_fleet",
    "make_inventory",
    "make_node",
    "make_owner",
    "make_plan",
    "make_quantized_model",
    "make_run_owner",
    "make_run_spec",
    "make_spec",
    "make_text_tokenizer",
    "quantized_model_spec",
    "train_bpe",
]
