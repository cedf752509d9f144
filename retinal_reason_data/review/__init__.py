"""The review page: `rrd review RECIPE` serves the build's traces to annotators, whose verdicts land in
`annotations/` (see retinal_reason_data.review.verdicts).

server.py starts uvicorn (protocol.py: h11 with a header timeout) on the app (app.py: routes) behind its door
(guard.py: host, sessions, token, the checks on every POST); sessions.py binds each browser to its annotator,
bodies.py holds the strict request models, state.py what the page asks of the build and the verdict files, and
snapshot.py the copy of the build it reads. labelstudio.py is the Label Studio round trip."""
