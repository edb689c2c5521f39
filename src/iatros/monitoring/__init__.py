"""Remote and bedside monitoring: the National Early Warning Score 2 of one observation set
(news2.py, RCP 2017) and its course over time per patient (trend.py). Arithmetic only, no
service, storage or network; imports only `iatros.errors` (with numpy and pandas)."""
