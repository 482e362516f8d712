"""The comparison study (``launch.compare``): stages, quality against baselines, media and the report.

  compare  options, the staged and cached run, the overall progress line
  quality  each model beside honest baselines, bootstrap intervals and paired verdicts
  media    same- and cross-identity reenactment videos
  report   report.md / report.html / report.json and charts
"""
