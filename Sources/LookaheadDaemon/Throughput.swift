/// Lines and tokens per second of batch work: over the current busy spell, or over its last
/// `window` lines once there are more.
struct Throughput {
    private static let window = 16
    private var since = 0.0
    private var finishes: [(at: Double, tokens: Int)] = []

    /// A line started while none was in flight: a new spell, with rates of its own.
    mutating func becameBusy(at time: Double) {
        since = time
        finishes = []
    }

    mutating func finished(at time: Double, tokens: Int) {
        finishes.append((time, tokens))
        if finishes.count > Self.window + 1 { finishes.removeFirst() }
    }

    /// nil until a line of this spell has finished.
    func rates(at now: Double) -> (lines: Double, tokens: Double)? {
        let full = finishes.count > Self.window
        let counted = full ? finishes.dropFirst() : finishes[...]
        let elapsed = now - (full ? finishes[0].at : since)
        guard !counted.isEmpty, elapsed > 0 else { return nil }
        return (Double(counted.count) / elapsed, Double(counted.reduce(0) { $0 + $1.tokens }) / elapsed)
    }
}
