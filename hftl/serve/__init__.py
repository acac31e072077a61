"""`hftl serve`: an HTTP inference server for hftl's ONNX exports.

Layers, each importing only those above it:
    settings  -> what to serve and its limits (one dataclass, from the CLI)
    limits    -> per-request checks before any decoding work: the input count, then each input as its modality
                 checks it (Modality.check_served_input: text length, image pixels, audio seconds)
    model     -> an export folder with its own preprocessing + a backend: raw inputs -> top-k labels
    speech    -> a speech recognition export through `hftl predict`'s recogniser: audio bytes -> transcripts
    requests  -> HTTP body (JSON or multipart) -> raw inputs, with 4xx errors that say what is wrong
    batcher   -> dynamic batching over a bounded queue (503 when full); preprocesses each batch in one call
    metrics   -> Prometheus counters and histograms
    page      -> the HTML page at GET /
    app       -> the FastAPI app wiring them together
    local     -> run it with uvicorn (K worker processes);  ray_serve -> the same app as a Ray Serve deployment
"""
