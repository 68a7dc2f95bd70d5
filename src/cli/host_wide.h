// Host-wide tracing, shared by `attach --all` and `serve`: every Node process of the host that passes the
// filter is traced, those running now and those that start (the kernel's process events, backed by scans
// of /proc), until a stop signal or --duration; the ones never traced are listed in the trace's info.
#pragma once

#include <functional>

#include "cli/commands.h"
#include "cli/trace_session.h"
#include "host/top_view.h"

namespace memlens::cli {

// Runs the session's loop over the whole host; each_poll (may be null) runs on the tracing thread after
// each poll of the tracer (about every 100 ms). The session is started; the caller finishes it.
void trace_host_wide(TraceSession& session, const host::TopFilter& filter, const TraceOptions& opts,
                     const std::function<void()>& each_poll);

}  // namespace memlens::cli
