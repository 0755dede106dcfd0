import Foundation
import Llama
import Lookahead
import LookaheadProtocol

/// What one pass costs for the rows it carries, T(n), on one model: whether a pass carrying γ
/// branches or a few proposed tokens costs about what one row costs decides whether speculation
/// can pay at all (docs/benchmarks.md).
public struct PassCostCurve: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public var rows: Int
        /// Median over the repeats: one slow pass (a page fault, another process) moves it little.
        public var seconds: Double
        public init(rows: Int, seconds: Double) {
            self.rows = rows
            self.seconds = seconds
        }
    }

    public var model: String
    /// Where its layers ran (`Model.device`): a GPU run whose offload failed shows "CPU" here.
    public var device: String
    /// Ascending by rows.
    public var points: [Point]

    public init(model: String, device: String, points: [Point]) {
        self.model = model
        self.device = device
        self.points = points.sorted { $0.rows < $1.rows }
    }

    public func seconds(rows: Int) -> Double? { points.first { $0.rows == rows }?.seconds }

    /// T(n)/T(1); nil without both.
    public func ratio(rows: Int) -> Double? {
        guard let one = seconds(rows: 1), one > 0, let n = seconds(rows: rows) else { return nil }
        return n / one
    }

    var json: JSONValue {
        ["model": .string(model), "device": .string(device),
         "rows": .array(points.map { JSONValue($0.rows) }),
         "seconds": .array(points.map { number($0.seconds, 6) }),
         "ratio": .array(points.map { number(ratio(rows: $0.rows), 3) })]
    }
}

/// Target and draft curves and what follows from them: c, the draft's cost per token over the
/// target's, and γ* = ⌈1/c⌉, the depth past which the draft cannot keep the target busy.
public struct PassCostReport: Sendable, Equatable {
    public var target: PassCostCurve
    public var draft: PassCostCurve?
    public var prefix: Int
    public var repeats: Int

    public init(target: PassCostCurve, draft: PassCostCurve?, prefix: Int, repeats: Int) {
        self.target = target
        self.draft = draft
        self.prefix = prefix
        self.repeats = repeats
    }

    /// 1-token passes, the way `EngineCosts.draftRatio` defines it.
    public var c: Double? {
        guard let d = draft?.seconds(rows: 1), let t = target.seconds(rows: 1), t > 0 else { return nil }
        return d / t
    }

    public var gammaStar: Int? { c.map { SpeedupModel.gammaCap(c: $0) } }

    public func table() -> String {
        let rows = target.points.map(\.rows)
        let curves = [("target", target)] + (draft.map { [("draft", $0)] } ?? [])
        var lines = ["pass cost T(n)/T(1), \(prefix) tokens of context, median of \(repeats)",
                     (["model", "device", "T(1) ms"] + rows.map { "n=\($0)" }).joined(separator: "\t")]
        for (role, curve) in curves {
            let one = curve.seconds(rows: 1).map { fixed($0 * 1000, 2) } ?? "–"
            lines.append(([role, curve.device, one] + rows.map { n in curve.ratio(rows: n).map { fixed($0, 2) } ?? "–" })
                .joined(separator: "\t"))
        }
        if let c, let gammaStar { lines.append("c \(fixed(c, 3)) (draft token / target token), γ* = ⌈1/c⌉ = \(gammaStar)") }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() -> JSONValue {
        var object: JSONObject = ["prefix": JSONValue(prefix), "repeats": JSONValue(repeats), "target": target.json,
                                  "c": number(c, 4)]
        object["draft"] = draft?.json ?? .null
        object["gamma_star"] = gammaStar.map { JSONValue($0) } ?? .null
        return .object(object)
    }
}

/// Times passes on a real context, the way the tick loop runs them: `n` rows after a prefix,
/// logits for every row (a branch's or a proposal's row is sampled), read back before the clock
/// stops, since a GPU backend returns from `llama_decode` before the work is done.
public enum PassCostProbe {
    public static func measure(_ context: Context, rows: [Int], prefix: Int, repeats: Int,
                               clock: () -> Double = monotonicSeconds) throws -> PassCostCurve {
        precondition(prefix > 0 && repeats > 0 && rows.allSatisfy { $0 > 0 })
        let vocab = Int32(context.model.vocab.count)
        // Any tokens do: a pass costs the same whatever the ids (the last id is often end-of-text).
        let token = { (position: Int) in Token(position % Int(vocab - 1)) }
        context.clear()
        let batch = Batch(capacity: max(prefix, rows.max() ?? 1))
        for p in 0..<prefix { _ = try batch.add(token(p), position: Int32(p), sequence: 0, logits: p == prefix - 1) }
        try context.decode(batch)

        func pass(_ n: Int) throws -> Double {
            batch.clear()
            for i in 0..<n { _ = try batch.add(token(prefix + i), position: Int32(prefix + i), sequence: 0, logits: true) }
            let t0 = clock()
            try context.decode(batch)
            _ = try context.logits(at: n - 1)
            let seconds = clock() - t0
            // The next pass sees the same prefix: each n is timed against one context length.
            _ = context.removeRange(0, from: Int32(prefix))
            return seconds
        }
        var points: [PassCostCurve.Point] = []
        for n in rows {
            _ = try pass(n)  // first pass of a shape: kernels load, buffers and graphs are sized
            let times = try (0..<repeats).map { _ in try pass(n) }
            points.append(.init(rows: n, seconds: median(times)))
        }
        context.clear()
        return PassCostCurve(model: context.model.summary, device: context.model.device, points: points)
    }
}

/// The middle value; for an even count, the mean of the two middle ones.
func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
