"""Traffic shaping: answer a provider's throttling before it burns the sending domain's reputation.

`policy.py` reads policies/shaping.yaml; `destinations.py` finds the destination of a recipient
(the one place that decides it); `shaper.py` holds the process-wide state (the store, rate and
warm-up counts) and decides holds; relay/steps/shaping.py is the pipeline step. docs/shaping.md.
"""
