import Lookahead

/// Token identity with `ar`, problem by problem: what speculation promises with greedy decoding,
/// the exact verifier and batch-invariant kernels. Runs come in any order; each mode's tokens are
/// compared with `ar`'s on the same problem.
public struct LosslessCheck: Sendable, Equatable {
    /// A run that left `ar`'s tokens: at which generated token (the shorter length when one is a
    /// prefix of the other).
    public struct Split: Sendable, Equatable {
        public var problem: Int
        public var mode: Mode
        public var token: Int

        public init(problem: Int, mode: Mode, token: Int) {
            self.problem = problem
            self.mode = mode
            self.token = token
        }
    }

    private var runs: [Int: [Mode: [Int32]]] = [:]

    public init() {}

    public mutating func record(problem: Int, mode: Mode, tokens: [Int32]) {
        runs[problem, default: [:]][mode] = tokens
    }

    /// Runs of a speculative mode on a problem `ar` also ran.
    public var compared: Int {
        runs.values.reduce(0) { n, modes in modes[.ar] == nil ? n : n + modes.count - 1 }
    }

    public var splits: [Split] {
        runs.keys.sorted().flatMap { problem -> [Split] in
            let modes = runs[problem]!
            guard let ar = modes[.ar] else { return [] }
            return Mode.allCases.compactMap { mode -> Split? in
                guard mode != .ar, let tokens = modes[mode], tokens != ar else { return nil }
                let token = zip(tokens, ar).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(tokens.count, ar.count)
                return Split(problem: problem, mode: mode, token: token)
            }
        }
    }

    public var report: String {
        let splits = splits
        return (["lossless: \(compared - splits.count)/\(compared) runs token-identical to ar"]
                + splits.map { "  #\($0.problem) \($0.mode.rawValue) left ar at generated token \($0.token)" })
            .joined(separator: "\n") + "\n"
    }
}
