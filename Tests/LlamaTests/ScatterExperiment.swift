import Testing
import Llama

@Suite("prefill experiment", .serialized)
struct PrefillExperiment {
    @Test(arguments: [1, 2, 5, 19])
    func multiTokenPrefillMatchesSingleTokenDecode(chunk: Int) throws {
        let model = Models.target
        let p = try model.vocab.tokenize("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. How many", addSpecial: true)
        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 2, threads: 2))
        let batch = Batch(capacity: 256)
        for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == p.count - 1) }
        try ctx.decode(batch)
        var next = TokenDistribution(logits: try ctx.logits(at: p.count - 1), params: .greedy).mostLikely
        var c: [Token] = []
        var lastLogits: [Float] = []
        for k in 0..<21 {
            c.append(next)
            batch.clear()
            try batch.add(next, position: Int32(p.count + k), sequence: 0, logits: true)
            try ctx.decode(batch)
            let row = try ctx.logits(at: 0)
            lastLogits = Array(row)
            next = TokenDistribution(logits: row, params: .greedy).mostLikely
        }
        // Sequence 1: the prompt's cells shared, the 21 continuation tokens fed `chunk` at a time.
        ctx.copySequence(0, to: 1, positions: 0..<Int32(p.count))
        var start = 0
        var logits: [Float] = []
        while start < c.count {
            let end = min(c.count, start + chunk)
            batch.clear()
            for k in start..<end { try batch.add(c[k], position: Int32(p.count + k), sequence: 1, logits: k == c.count - 1) }
            try ctx.decode(batch)
            if end == c.count { logits = Array(try ctx.logits(at: end - start - 1)) }
            start = end
        }
        let maxDiff = zip(logits, lastLogits).map { abs($0 - $1) }.max() ?? 0
        print("chunk \(chunk): max |Δlogit| = \(maxDiff)")
        #expect(maxDiff == 0)
    }
}
