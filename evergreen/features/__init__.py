"""The feature layer: daily feature tables in DuckDB SQL, written as Parquet that Feast reads.

Without Feast: ``customer_spending`` and ``terminal_risk`` (each table's SQL and columns),
``tables`` (time semantics and the layout on disk), ``repo`` (where the Feast repo is, and the
version of its definitions). With Feast, imported only inside asset bodies, tests and benchmarks
(``import feast`` takes seconds): ``definitions`` (entities, views, on-demand views, the
FeatureService), ``store`` (apply, materialize, the serving reader), ``online_store`` (the
batch-writing SQLite online store) and ``training_set`` (labelled transactions, point in time).
"""
