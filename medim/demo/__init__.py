"""`medim demo`: a local web app over a run or checkpoint, with the denoising visible.

model      what is served (a run, followed while it trains; a checkpoint; MeDiM's release)
inputs     pictures, painted regions and report text, checked with clear messages
requests   one user's request and its answer, independent of the page
frames     the intermediate states of a generation as pictures and texts
service    answering waiting requests together, each from its own seed
batching   the queue: one worker generates, requests that wait meanwhile are batched
app        the Gradio page (the optional `demo` extra)
browser    Playwright driving the page in the system's Chromium (tests, README screenshot)
"""
