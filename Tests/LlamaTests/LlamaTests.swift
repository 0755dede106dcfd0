import Testing
import Llama
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("Llama on real models", .serialized)
struct LlamaTests {
    let prompt = "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer:"

    @Test func vocabularyFingerprintsMatchWithinAFamilyOnly() throws {
        let qwen = try Models.target.vocab.fingerprint(), gemma = try Models.tiny.vocab.fingerprint()
        #expect(try Models.draft.vocab.fingerprint() == qwen)
        #expect(try Models.tiny.vocab.fingerprint() == gemma)
        #expect(gemma != qwen)
    }

    /// Steps cross between models of different families as text: each vocabulary must give a
    /// step's text back byte for byte from its tokens, with no space or BOS added in front.
    @Test func stepTextsSurviveEachVocabulary() throws {
        let steps = ["In April she sold 48 clips.\n\n", "Then 48 / 2 = 24 in May, so 48 + 24 = 72 in all.\n\n",
                     " leading space, ünïcödé — and \"quotes\"\n\n", "**Step 2:** $12 × 3 = $36\n\n", "</think>\n\n"]
        for model in try [Models.target, Models.tiny] {
            for text in steps {
                let tokens = try model.vocab.tokenize(text, addSpecial: false, parseSpecial: false)
                #expect(model.vocab.detokenize(tokens) == text, "\(model.summary): \(text.debugDescription)")
            }
        }
    }

    @Test func greedyGenerationIsDeterministic() throws {
        let tokens = try Models.draft.vocab.tokenize(prompt, addSpecial: true)
        let a = try greedyAlone(Models.draft, tokens, count: 24)
        let b = try greedyAlone(Models.draft, tokens, count: 24)
        #expect(a == b)
        #expect(try Models.draft.vocab.detokenize(a).contains("8"))
    }

    /// Later work relies on this: a sequence decoded next to others in one batch continues exactly
    /// as it does alone (greedy), so packing sessions together never changes an answer. It holds with
    /// the defaults (no weight repacking, flash attention); see `Model.init` and `ContextParams`.
    @Test func batchInvariance() throws {
        let model = try Models.draft
        let prompts = try [
            "The capital of France is",
            "def fibonacci(n):",
            "Question: 12 * 7 = ? Answer:",
            "Once upon a time, in a small village by the sea,",
        ].map { try model.vocab.tokenize($0, addSpecial: true) }
        let count = 32
        let alone = try prompts.map { try greedyAlone(model, $0, count: count) }

        let ctx = try Context(model: model, params: ContextParams(contextLength: 1024, batchSize: 256, sequences: 4, threads: Models.threads))
        let batch = Batch(capacity: 256)
        var rows: [Int] = []
        for (s, p) in prompts.enumerated() {
            for (i, t) in p.enumerated() {
                let r = try batch.add(t, position: Int32(i), sequence: Int32(s), logits: i == p.count - 1)
                if i == p.count - 1 { rows.append(r) }
            }
        }
        try ctx.decode(batch)
        var together = [[Token]](repeating: [], count: 4)
        for _ in 0..<count {
            let next = try rows.map { TokenDistribution(logits: try ctx.logits(at: $0), params: .greedy).mostLikely }
            batch.clear()
            rows = []
            for s in 0..<4 {
                together[s].append(next[s])
                rows.append(try batch.add(next[s], position: Int32(prompts[s].count + together[s].count - 1), sequence: Int32(s), logits: true))
            }
            try ctx.decode(batch)
        }
        for s in 0..<4 { #expect(together[s] == alone[s], "sequence \(s) diverged in the batch") }
    }

    /// Tokens fed in chunks of any size give bit-identical logits to feeding them one at a time:
    /// ggml-cpu's reference paths (GGML_CPU_USE_REF, set per context by `ContextParams.batchInvariant`, on by default in this module) keep every row's arithmetic
    /// independent of its batch, so a branch's prefill computes what plain decoding would have.
    @Test(arguments: [2, 5, 21])
    func chunkedPrefillMatchesSingleTokenDecode(chunk: Int) throws {
        let model = try Models.target
        let p = try model.vocab.tokenize(prompt, addSpecial: true)
        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 2, threads: Models.threads))
        let batch = Batch(capacity: 256)
        for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == p.count - 1) }
        try ctx.decode(batch)
        var next = TokenDistribution(logits: try ctx.logits(at: p.count - 1), params: .greedy).mostLikely
        var continuation: [Token] = []
        var single: [Float] = []
        for k in 0..<21 {
            continuation.append(next)
            batch.clear()
            try batch.add(next, position: Int32(p.count + k), sequence: 0, logits: true)
            try ctx.decode(batch)
            single = Array(try ctx.logits(at: 0))
            next = TokenDistribution(logits: try ctx.logits(at: 0), params: .greedy).mostLikely
        }
        ctx.copySequence(0, to: 1, positions: 0..<Int32(p.count))
        var chunked: [Float] = []
        for start in stride(from: 0, to: continuation.count, by: chunk) {
            let end = min(continuation.count, start + chunk)
            batch.clear()
            for k in start..<end {
                try batch.add(continuation[k], position: Int32(p.count + k), sequence: 1, logits: k == continuation.count - 1)
            }
            try ctx.decode(batch)
            if end == continuation.count { chunked = Array(try ctx.logits(at: end - start - 1)) }
        }
        #expect(chunked == single)
    }

    @Test func branchingLeavesTheOriginalUntouched() throws {
        let model = try Models.draft
        let p = try model.vocab.tokenize(prompt, addSpecial: true)
        let reference = try greedyAlone(model, p, count: 16)

        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 2, threads: Models.threads))
        let batch = Batch(capacity: 256)
        for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == p.count - 1) }
        try ctx.decode(batch)
        var first = TokenDistribution(logits: try ctx.logits(at: p.count - 1), params: .greedy).mostLikely

        // Fork the prompt into sequence 1, decode a different continuation there, then drop it.
        ctx.copySequence(0, to: 1)
        #expect(ctx.positions(of: 1) == 0...Int32(p.count - 1))
        batch.clear()
        for (k, t) in try model.vocab.tokenize(" Let me think about bananas").enumerated() {
            try batch.add(t, position: Int32(p.count + k), sequence: 1, logits: false)
        }
        try ctx.decode(batch)
        #expect(ctx.positions(of: 1)!.upperBound > ctx.positions(of: 0)!.upperBound)
        #expect(ctx.removeRange(1))
        #expect(ctx.positions(of: 1) == nil)

        var continued: [Token] = [first]
        var position = Int32(p.count)
        for _ in 1..<16 {
            batch.clear()
            try batch.add(first, position: position, sequence: 0, logits: true)
            position += 1
            try ctx.decode(batch)
            first = TokenDistribution(logits: try ctx.logits(at: 0), params: .greedy).mostLikely
            continued.append(first)
        }
        #expect(continued == reference)
    }

    /// Logits of the last of `tokens` decoded as one batch in a fresh context: what plain decoding
    /// gives, bit for bit, in batch-invariant mode (`chunkedPrefillMatchesSingleTokenDecode`).
    func logitsAlone(_ model: Model, _ tokens: [Token]) throws -> [Float] {
        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 1, threads: Models.threads))
        let batch = Batch(capacity: 256)
        for (i, t) in tokens.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == tokens.count - 1) }
        try ctx.decode(batch)
        return Array(try ctx.logits(at: tokens.count - 1))
    }

    /// A branch decoded and dropped between a sequence's tokens leaves free cells below that
    /// sequence's latest ones. Were they refilled by its next tokens, attention would sum its cells
    /// out of position order (flash attention goes in cell order) and the logits would move.
    @Test func aDroppedBranchLeavesTheSequenceBitExact() throws {
        let model = try Models.draft
        let p = try model.vocab.tokenize(prompt, addSpecial: true)
        let continuation = try model.vocab.tokenize(" He buys 5 more, so 3 + 5 = 8 apples in all.")
        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 2, threads: Models.threads))
        let batch = Batch(capacity: 256)
        func feed(_ tokens: ArraySlice<Token>, from position: Int, sequence: Int32) throws {
            batch.clear()
            for (k, t) in tokens.enumerated() {
                try batch.add(t, position: Int32(position + k), sequence: sequence, logits: k == tokens.count - 1)
            }
            try ctx.decode(batch)
        }
        try feed(p[...], from: 0, sequence: 0)
        ctx.copySequence(0, to: 1)
        try feed(try model.vocab.tokenize(" Let me think about bananas")[...], from: p.count, sequence: 1)
        try feed(continuation[..<4], from: p.count, sequence: 0)
        ctx.removeRange(1)
        for k in 4..<continuation.count { try feed(continuation[k...k], from: p.count + k, sequence: 0) }
        #expect(Array(try ctx.logits(at: 0)) == (try logitsAlone(model, p + continuation)))
    }

    /// Removed cells are parked, not freed, until the pool runs out: then they are freed and the
    /// rest packed, in order, and decoding goes on bit-exact.
    @Test func parkedCellsAreFreedWhenThePoolFills() throws {
        let model = try Models.draft
        let p = try model.vocab.tokenize(prompt, addSpecial: true)
        let continuation = try model.vocab.tokenize(" He buys 5 more, so 3 + 5 = 8 apples in all.")
        let branch = try model.vocab.tokenize(" Let me think about bananas and oranges and pears and plums.")
        let ctx = try Context(model: model, params: ContextParams(contextLength: 256, batchSize: 256, sequences: 2, threads: Models.threads))
        let batch = Batch(capacity: 256)
        for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: false) }
        try ctx.decode(batch)
        var allocated = p.count
        // Each pass: the sequence's next token and a branch, dropped after it. The token comes after
        // the branch's in one pass and before them in the next, where the lowest free cell (were
        // the branch's freed) would be below the sequence's latest.
        var row = 0
        for (k, t) in continuation.enumerated() {
            ctx.copySequence(0, to: 1)
            batch.clear()
            if k % 2 == 1 { row = try batch.add(t, position: Int32(p.count + k), sequence: 0, logits: true) }
            for (j, b) in branch.enumerated() { try batch.add(b, position: Int32(p.count + k + j), sequence: 1, logits: false) }
            if k % 2 == 0 { row = try batch.add(t, position: Int32(p.count + k), sequence: 0, logits: true) }
            try ctx.decode(batch)
            ctx.removeRange(1)
            allocated += branch.count + 1
        }
        #expect(allocated > ctx.contextLength, "the test must run the pool out of free cells")
        #expect(ctx.positions(of: 0) == 0...Int32(p.count + continuation.count - 1))
        #expect(Array(try ctx.logits(at: row)) == (try logitsAlone(model, p + continuation)))
    }

    @Test func sharedPrefixTokenServesTwoSequences() throws {
        let model = try Models.draft
        let p = try model.vocab.tokenize(prompt, addSpecial: true)
        let reference = try greedyAlone(model, p, count: 8)

        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 2, threads: Models.threads))
        let batch = Batch(capacity: 256, maxSequencesPerToken: 2)
        for (i, t) in p.enumerated() {
            try batch.add(t, position: Int32(i), sequences: [0, 1], logits: i == p.count - 1)
        }
        try ctx.decode(batch)
        // One cell per prompt token, held by both sequences.
        #expect(ctx.positions(of: 0) == 0...Int32(p.count - 1))
        #expect(ctx.positions(of: 1) == 0...Int32(p.count - 1))
        var next = [TokenDistribution(logits: try ctx.logits(at: p.count - 1), params: .greedy).mostLikely]
        next.append(next[0])
        var outs: [[Token]] = [[next[0]], [next[1]]]
        for step in 1..<8 {
            batch.clear()
            for s in 0..<2 { try batch.add(next[s], position: Int32(p.count + step - 1), sequence: Int32(s), logits: true) }
            try ctx.decode(batch)
            for s in 0..<2 {
                next[s] = TokenDistribution(logits: try ctx.logits(at: s), params: .greedy).mostLikely
                outs[s].append(next[s])
            }
        }
        #expect(outs[0] == reference)
        #expect(outs[1] == reference)
    }

    @Test func tokenizeRoundTripMultilingual() throws {
        let text = "Grüße aus Zürich — 東京は晴れ。Привет, мир! 🚀 x² + y² = z²"
        for model in try [Models.draft, Models.tiny] {
            let tokens = try model.vocab.tokenize(text, addSpecial: false)
            #expect(!tokens.isEmpty)
            #expect(model.vocab.detokenize(tokens) == text)
            // Pieces concatenated byte-wise give the same text even where a character spans tokens.
            let bytes = tokens.flatMap { model.vocab.pieceBytes($0) }
            #expect(String(decoding: bytes, as: UTF8.self) == text)
        }
    }

    @Test func chatTemplateIsTheModelsChatML() throws {
        let template = try #require(try Models.target.chatTemplate)
        #expect(template.contains("<|im_start|>"))
        let formatted = try Models.target.applyChatTemplate([
            ChatMessage(role: "system", content: "You are terse."),
            ChatMessage(role: "user", content: "2+2?"),
        ])
        #expect(formatted == "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
        let tokens = try Models.target.vocab.tokenize(formatted, parseSpecial: true)
        #expect(try Models.target.vocab.detokenize(tokens, special: true) == formatted)
        // The tiny model is a base model: no template, and a clear error.
        #expect(try Models.tiny.chatTemplate == nil)
        #expect(throws: LlamaError.self) { try Models.tiny.applyChatTemplate([ChatMessage(role: "user", content: "x")]) }
    }

    @Test func embeddingsRankMeaning() throws {
        let embed = try Models.embed
        let ctx = try Context(model: embed, params: ContextParams(contextLength: 512, batchSize: 512, sequences: 4, threads: Models.threads, embeddings: true))
        let v = try ctx.embed(["The cat sat.", "A cat was sitting.", "Tax rates rose in May."])
        #expect(v.allSatisfy { $0.count == embed.embeddingSize })
        let norm = v[0].reduce(0) { $0 + $1 * $1 }
        #expect(abs(norm - 1) < 1e-3)
        #expect(cosine(v[0], v[1]) > cosine(v[0], v[2]))
        #expect(cosine(v[0], v[1]) > 0.6)
    }

    @Test func modelErrorsAreClear() throws {
        let dir = "/tmp/lookahead-llama-tests-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = system("rm -rf \(dir)") }
        #expect(throws: LlamaError.modelNotFound(path: "\(dir)/absent.gguf")) { try Model(path: "\(dir)/absent.gguf") }

        let notGGUF = "\(dir)/notes.gguf"
        let f = fopen(notGGUF, "w")!
        fputs("this is not a model\n", f)
        fclose(f)
        #expect(throws: LlamaError.notGGUF(path: notGGUF)) { try Model(path: notGGUF) }

        let truncated = "\(dir)/truncated.gguf"
        try requireModel(Models.path("tiny"))
        #expect(system("head -c 1000000 '\(Models.path("tiny"))' > '\(truncated)'") == 0)
        #expect(throws: LlamaError.modelLoadFailed(path: truncated)) { try Model(path: truncated) }

        #expect(throws: LlamaError.self) {
            try Context(model: Models.tiny, params: ContextParams(contextLength: Models.tiny.trainedContext * 2))
        }
        let e = LlamaError.notGGUF(path: notGGUF)
        #expect(e.description.contains(notGGUF))
    }

    /// Every layer by default: on the GPU when this llama.cpp has a GPU backend, else all on the CPU.
    @Test func modelDeviceIsTheGPUWhenThereIsOne() throws {
        let tiny = try Models.tiny
        #expect(tiny.device == (LlamaBackend.gpu ?? "CPU"))
        #expect(try Model(path: tiny.path, gpuLayers: 0).device == "CPU")
    }

    @Test func samplerIsSeededAndRespectsTopK() throws {
        var logits = [Float](repeating: -10, count: 100)
        for i in 0..<10 { logits[i] = Float(10 - i) }
        let params = SamplingParams(temperature: 1, topK: 3, topP: 1, seed: 42)
        let draws: ([Float]) -> [Token] = { l in
            var s = Sampler(params)
            return l.withUnsafeBufferPointer { b in (0..<200).map { _ in s.sample(b) } }
        }
        let a = draws(logits), b = draws(logits)
        #expect(a == b)
        #expect(Set(a).isSubset(of: [0, 1, 2]))
        #expect(Set(a).count == 3)
        let greedy = logits.withUnsafeBufferPointer { TokenDistribution(logits: $0, params: .greedy) }
        #expect(greedy == .certain(0))
    }
}
