import "types"
from(bucket: "telegraf")
  |> range(start: -604800s)
  |> filter(fn: (r) => types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int") or types.isType(v: r._value, type: "uint"))
  |> last()
