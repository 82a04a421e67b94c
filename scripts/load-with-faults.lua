-- wrk script of scripts/load-with-faults.sh: varied paths, and machine-readable totals.
--
-- Paths: `/users/<n>` with a running n, every tenth of which answers 404 (the example's
-- handler), and `/` every seventh request. So the counter sees several `status` series, and
-- the check proves that non-2xx responses are counted like any other (wrk counts them as
-- completed AND in errors.status).
--
-- `sent` counts the requests this thread started to write. wrk reconnects silently when the
-- server closes a connection (a read of 0 bytes is no error in wrk 4.1), so a request that a
-- killed worker read, and perhaps counted, but never answered shows in no wrk error figure;
-- it does show as sent but not completed. The requests in flight when the duration ends
-- (one per connection at most: no pipelining) are sent and never completed either.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

sent = 0

function request()
  sent = sent + 1
  local path
  if sent % 7 == 0 then
    path = "/"
  else
    path = "/users/" .. sent
  end
  return wrk.format(nil, path)
end

function done(summary, latency, requests)
  local total_sent = 0
  for _, t in ipairs(threads) do
    total_sent = total_sent + t:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_TOTALS {"completed": %d, "sent": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "duration_us": %d, "latency_p99_us": %d}\n',
    summary.requests, total_sent, e.connect, e.read, e.write, e.status, e.timeout,
    summary.duration, latency:percentile(99)))
end
