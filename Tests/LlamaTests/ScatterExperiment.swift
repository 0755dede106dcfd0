import Testing
import Llama

@Suite("scatter experiment", .serialized)
struct ScatterExperiment {
    @Test(arguments: [(true, false), (false, true), (false, false)])
    func scatteredCellsKeepGreedyTokens(junk: Bool, interleave: Bool) throws {
        let model = Models.target
        let p = try model.vocab.tokenize("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. How many", addSpecial: true)
        let n = 40
        let reference = try greedyAlone(model, p, count: n)
        let ctx = try Context(model: model, params: ContextParams(contextLength: 512, batchSize: 256, sequences: 4, threads: 2))
        let batch = Batch(capacity: 256)
        if junk {
            for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 1, logits: false) }
            for (i, t) in p.prefix(30).enumerated() { try batch.add(t, position: Int32(i), sequence: 2, logits: false) }
            try ctx.decode(batch)
            ctx.removeRange(1)
            batch.clear()
        }
        for (i, t) in p.enumerated() { try batch.add(t, position: Int32(i), sequence: 0, logits: i == p.count - 1) }
        try ctx.decode(batch)
        if junk { ctx.removeRange(2) }
        var out: [Token] = []
        var pos3: Int32 = 0
        var next = TokenDistribution(logits: try ctx.logits(at: p.count - 1), params: .greedy).mostLikely
        for k in 0..<n {
            out.append(next)
            batch.clear()
            try batch.add(next, position: Int32(p.count + k), sequence: 0, logits: true)
            if interleave, k % 3 == 0 { try batch.add(next, position: pos3, sequence: 3, logits: false); pos3 += 1 }
            try ctx.decode(batch)
            if interleave, k % 5 == 4 { ctx.removeRange(3); pos3 = 0 }
            next = TokenDistribution(logits: try ctx.logits(at: 0), params: .greedy).mostLikely
        }
        #expect(out == reference)
    }
}
