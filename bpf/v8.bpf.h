// V8 inside node: GC, heap used, ArrayBuffer backing stores (uprobes on V8 symbols, or USDT).
