import "types"
from(bucket: "telegraf")
  |> range(start: 2026-05-03T08:00:00.000Z, stop: 2026-05-10T08:00:00.001Z)
  |> filter(fn: (r) => r["host"] == "db-host-02")
  |> filter(fn: (r) => types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int") or types.isType(v: r._value, type: "uint"))
  |> aggregateWindow(every: 900s, fn: mean, createEmpty: false, timeSrc: "_start")
