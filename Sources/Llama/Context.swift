import CLlama
#if canImport(Glibc)
import Glibc
#endif

public struct ContextParams: Sendable {
    /// KV cells shared by all sequences (the unified cache).
    public var contextLength: Int = 4096
    /// Most tokens one `decode` may carry.
    public var batchSize: Int = 512
    /// Distinct sequence ids (1 root + branches per session, summed over sessions).
    public var sequences: Int = 1
    public var threads: Int = 2
    /// Pooled sentence embeddings instead of logits (embedding models).
    public var embeddings: Bool = false
    /// Flash attention. On by default: its CPU kernel skips masked cells, so a sequence's attention
    /// does not depend on the other sequences sharing the unified cache (batch invariance); without
    /// it the masked softmax sums over every cell and near-ties flipped greedy tokens.
    public var flashAttention: Bool = true
    /// KV cache precision: F32 with `batchInvariant`, F16 without (unless given). Flash attention
    /// accumulates in the cache's type, and with F16 the order in which a sequence's cells sit in
    /// the shared cache (which changes as branches come and go) moved results enough to flip
    /// greedy tokens. Without batch invariance those flips are there anyway (repacked kernels), so
    /// the cache takes llama.cpp's F16: half the memory per cell, twice the sessions per GiB.
    public var kvF32: Bool
    /// ggml-cpu's reference paths (our build's switch, scripts/deps.sh): the same arithmetic for a
    /// row whatever else shares its pass — flash attention never takes its split-KV (1-token,
    /// ≥ 512 cells) or tiled (≥ 64 tokens) path. Costs the fused kernels: 10 % of decode here.
    /// It also keeps every sequence's cells in position order (`Context.removeRange`), which takes
    /// one more sequence id.
    public var batchInvariant: Bool = true

    /// Removed cells are parked (`Context.removeRange`). Not in embedding contexts: they clear the
    /// whole cache for every call.
    var parksRemovedCells: Bool { batchInvariant && !embeddings }

    public init(contextLength: Int = 4096, batchSize: Int = 512, sequences: Int = 1, threads: Int = 2,
                embeddings: Bool = false, flashAttention: Bool = true, batchInvariant: Bool = true, kvF32: Bool? = nil) {
        self.batchInvariant = batchInvariant
        self.kvF32 = kvF32 ?? batchInvariant
        self.flashAttention = flashAttention
        self.contextLength = contextLength
        self.batchSize = batchSize
        self.sequences = sequences
        self.threads = threads
        self.embeddings = embeddings
    }
}

/// A llama context: the KV cache and the compute state for one model. Not thread-safe: exactly one
/// thread (the engine thread) owns it. Freed when the last reference goes.
public final class Context {
    let pointer: OpaquePointer
    public let model: Model
    public let params: ContextParams
    /// Nil for encoder-only models (BERT-style embedders keep no KV cache).
    private let memory: llama_memory_t?
    /// The sequence that holds removed cells in batch-invariant mode (the id after the caller's).
    /// Flash attention's CPU kernel sums a query's cells in cell order, and llama.cpp hands a
    /// decode the first free cells from the lowest freed one up: a hole left by a removal is
    /// refilled by whichever sequence decodes next, below that sequence's own latest cells, and its
    /// attention then sums in another order than plain decoding's (flipped greedy tokens where
    /// the target barely preferred one). Parked cells are never free, so free cells only ever lie
    /// above every used one and each decode's cells land above all earlier ones, in batch order.
    private let parking: llama_seq_id?
    /// Whether cells were parked since the last `compact`.
    private var parked = false

    /// llama.cpp caps sequence ids at LLAMA_MAX_SEQ; a batch-invariant context keeps one for
    /// parked cells.
    public static func maxSequences(batchInvariant: Bool) -> Int { batchInvariant ? 255 : 256 }

    public init(model: Model, params: ContextParams) throws {
        if params.contextLength > model.trainedContext {
            throw LlamaError.contextTooLarge(requested: params.contextLength, trained: model.trainedContext)
        }
        let maxSequences = Context.maxSequences(batchInvariant: params.parksRemovedCells)
        guard (1...maxSequences).contains(params.sequences) else {
            throw LlamaError.contextCreationFailed("sequences must be 1...\(maxSequences), got \(params.sequences)")
        }
        var p = llama_context_default_params()
        p.n_ctx = UInt32(params.contextLength)
        p.n_batch = UInt32(params.batchSize)
        p.n_ubatch = UInt32(params.batchSize)
        p.n_seq_max = UInt32(params.sequences + (params.parksRemovedCells ? 1 : 0))
        p.n_threads = Int32(params.threads)
        p.n_threads_batch = Int32(params.threads)
        // One cell pool for all sequences: seq_cp then shares cells instead of copying whole streams,
        // and a branch can be forked from any prefix of another sequence (docs/architecture.md).
        p.kv_unified = true
        p.embeddings = params.embeddings
        if params.embeddings { p.pooling_type = LLAMA_POOLING_TYPE_MEAN }
        p.flash_attn_type = params.flashAttention ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED
        if params.kvF32 {
            p.type_k = GGML_TYPE_F32
            p.type_v = GGML_TYPE_F32
        }
        p.no_perf = true
        // ggml-cpu reads the switch when the context creates its CPU backend, just below.
        setenv("GGML_CPU_USE_REF", params.batchInvariant ? "1" : "0", 1)
        guard let ctx = llama_init_from_model(model.pointer, p) else {
            throw LlamaError.contextCreationFailed("llama_init_from_model refused n_ctx=\(params.contextLength) n_seq_max=\(params.sequences) for \(model.path)")
        }
        pointer = ctx
        memory = llama_get_memory(ctx)
        parking = params.parksRemovedCells && memory != nil ? llama_seq_id(params.sequences) : nil
        self.model = model
        self.params = params
    }

    deinit { llama_free(pointer) }

    public var contextLength: Int { Int(llama_n_ctx(pointer)) }

    public func setThreads(_ n: Int) { llama_set_n_threads(pointer, Int32(n), Int32(n)) }

    /// Runs the batch. On failure the KV cache is as it was before the call (llama.cpp restores it),
    /// so the caller can shrink the batch or drop a session and carry on. When parked cells fill
    /// the pool, they are freed (`compact`) and the batch tried again; llama.cpp logs a warning
    /// for the first try.
    public func decode(_ batch: Batch) throws {
        var rc = llama_decode(pointer, batch.raw)
        if rc == 1, parked {
            try compact()
            rc = llama_decode(pointer, batch.raw)
        }
        if rc == 1 { throw LlamaError.noKVSlot(tokens: batch.count) }
        if rc != 0 { throw LlamaError.decodeFailed(code: rc, tokens: batch.count) }
    }

    /// Frees the parked cells and packs the others at the bottom of the pool, their order kept:
    /// llama.cpp saves the whole cache cell by cell in cell order, skipping free cells, and
    /// restores it into cells 0, 1, … with the data copied byte for byte.
    private func compact() throws {
        guard let memory, let parking else { return }
        llama_memory_seq_rm(memory, parking, -1, -1)
        parked = false
        let size = llama_state_seq_get_size(pointer, -1)
        let state = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = llama_state_seq_get_data(pointer, buffer.baseAddress, size, -1)
        }
        guard state.count == size, llama_state_seq_set_data(pointer, state, size, -1) == size else {
            throw LlamaError.kvCompactionFailed(bytes: size)
        }
    }

    /// The logits row of batch index `i` of the last decode; valid until the next decode.
    public func logits(at i: Int) throws -> UnsafeBufferPointer<Float> {
        guard let row = llama_get_logits_ith(pointer, Int32(i)) else { throw LlamaError.noLogits(index: i) }
        return UnsafeBufferPointer(start: row, count: model.vocab.count)
    }

    // MARK: Sequences (KV ranges)

    /// Makes `destination` share `source`'s cells for positions in `positions` (all when nil).
    /// With the unified cache no KV data is copied.
    public func copySequence(_ source: Int32, to destination: Int32, positions: Range<Int32>? = nil) {
        guard let memory else { return }
        llama_memory_seq_cp(memory, source, destination, positions?.lowerBound ?? -1, positions?.upperBound ?? -1)
    }

    /// Removes `sequence`'s cells at positions ≥ `from` (and < `to` when given). Returns false
    /// when llama.cpp cannot remove a partial range (recurrent models). In batch-invariant mode
    /// the cells stay taken, by the parking sequence, until `compact`.
    @discardableResult
    public func removeRange(_ sequence: Int32, from: Int32 = 0, to: Int32? = nil) -> Bool {
        guard let memory else { return true }
        if let parking {
            llama_memory_seq_cp(memory, sequence, parking, from, to ?? -1)
            parked = true
        }
        return llama_memory_seq_rm(memory, sequence, from, to ?? -1)
    }

    /// Positions held for `sequence`, nil when it holds none.
    public func positions(of sequence: Int32) -> ClosedRange<Int32>? {
        guard let memory else { return nil }
        let lo = llama_memory_seq_pos_min(memory, sequence), hi = llama_memory_seq_pos_max(memory, sequence)
        return lo < 0 || hi < 0 ? nil : lo...hi
    }

    public func clear() {
        if let memory { llama_memory_clear(memory, true) }
        parked = false
    }

    // MARK: Embeddings

    /// The pooled, L2-normalised embedding of `sequence` after the last decode (embedding contexts).
    public func embedding(of sequence: Int32) throws -> [Float] {
        guard params.embeddings, let e = llama_get_embeddings_seq(pointer, sequence) else {
            throw LlamaError.notAnEmbeddingModel("no pooled embedding for sequence \(sequence) of \(model.path)")
        }
        let v = Array(UnsafeBufferPointer(start: e, count: model.embeddingSize))
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }

    /// Embeds several texts in one batch (one sequence each, so they never attend to each other).
    public func embed(_ texts: [String]) throws -> [[Float]] {
        guard params.embeddings else { throw LlamaError.notAnEmbeddingModel("context was not created for embeddings") }
        var results: [[Float]] = []
        // Split into chunks that fit both the batch and the sequence budget.
        var start = 0
        let tokenized = try texts.map { text -> [Token] in
            let t = try model.vocab.tokenize(text, addSpecial: true, parseSpecial: false)
            return Array(t.prefix(params.batchSize))
        }
        while start < tokenized.count {
            let batch = Batch(capacity: params.batchSize)
            var end = start
            while end < tokenized.count, end - start < params.sequences,
                  batch.count + tokenized[end].count <= params.batchSize {
                let seq = Int32(end - start)
                for (p, t) in tokenized[end].enumerated() {
                    try batch.add(t, position: Int32(p), sequence: seq, logits: true)
                }
                end += 1
            }
            clear()
            try decode(batch)
            for i in start..<end { results.append(try embedding(of: Int32(i - start))) }
            start = end
        }
        return results
    }
}

public func cosine(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var dot: Float = 0, na: Float = 0, nb: Float = 0
    for i in 0..<a.count { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
    return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
}
