"""``edgeface serve``: the recognition loop on a camera plus a REST API and a web page, in one process.

Device half: it never imports TensorFlow. The web stack (FastAPI, uvicorn, python-multipart) is the ``serve`` extra.
"""
