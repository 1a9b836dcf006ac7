from(bucket: "telegraf")
  |> range(start: -1h)
  |> limit(n: 1)
