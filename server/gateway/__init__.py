"""The HTTP gateway: the callback endpoint the SL posts to, how its bodies are read (forms,
multipart, compressed bodies), the connections it serves, its ready-made answers, the
descriptor gate and the runner that binds it to a socket."""
