"""Quality flags for converted masks (``box2mask qa``): signals, a suspicion score, reports,
a review page and applying its decisions. See docs/qa.md."""
