"""`vloom serve`: an OpenAI-compatible chat-completions server for a vloom checkpoint.

protocol.py parses and checks requests (and writes responses and errors), engine.py turns them
into prompts and runs the one sampling loop in a worker thread, server.py is the HTTP side
(`start_server` / `stop_server` run one in-process), commands.py the CLI. Nothing is imported
here: the CLI's help must not import torch."""
