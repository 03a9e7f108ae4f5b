"""Other ways in: results the relay did not see on a live SMTP session (DESIGN.md, ways 3 and 4).

Each adapter here turns what it reads into the funnel's input (`outcomes.Observation`); none of them
classifies, lists or formats events itself.
"""
