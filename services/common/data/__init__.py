"""The tables several services read, one module per table family: each declares its tables'
migrations (once) and holds their read helpers, and the write helpers other services call.

A table that one service alone uses stays in that service. Migrations keep the component and
version they were first recorded under (a deployment that applied them applies nothing again),
so a module here may declare migrations of component ``ingest``, ``analysis`` or ``sampler``.
"""
