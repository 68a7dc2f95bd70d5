// File-descriptor tracing: uprobes on the C library's fd-creating and fd-closing wrappers.
