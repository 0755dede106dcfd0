/// A request's stop strings, watched in its committed text as it is published. They apply to the
/// answer: the text after `</think>` when the generation opened with `<think>`, else all of it —
/// a stop string meant for the answer must not end the reasoning. The text ends before the first
/// match; scope text that could begin a stop string is held back until the next step decides, so
/// nothing past a stop string is ever published.
struct StopScan {
    private enum Phase {
        /// Only whitespace so far: whether the model thinks is not known yet.
        case opening
        case thinking
        case answering
    }

    private let stops: [[UInt8]]
    private var phase = Phase.opening
    private var held: [UInt8] = []
    /// Everything published: the generation's text once a stop string ended it.
    private(set) var published: [UInt8] = []
    private(set) var stopped = false

    init(_ stops: [String]) { self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty } }

    var isActive: Bool { !stops.isEmpty }

    /// What of a committed step to publish now; `answer` is the session's phase for it.
    mutating func feed(_ text: String, answer: Bool) -> String {
        guard isActive, !stopped else { return stopped ? "" : text }
        var bytes = Array(text.utf8)
        if phase == .opening, let first = bytes.firstIndex(where: { !Self.isSpace($0) }) {
            phase = bytes[first...].starts(with: Self.thinkOpen) ? .thinking : .answering
        }
        if phase == .thinking && answer { phase = .answering }
        guard phase == .answering else { return publish(bytes) }
        bytes = held + bytes
        held.removeAll()
        if let cut = firstMatch(in: bytes) {
            stopped = true
            return publish(Array(bytes[..<cut]))
        }
        let keep = heldTail(of: bytes)
        held = Array(bytes[(bytes.count - keep)...])
        return publish(Array(bytes[..<(bytes.count - keep)]))
    }

    /// The held text, once the session has ended without a match.
    mutating func flush() -> String {
        defer { held.removeAll() }
        return publish(held)
    }

    private mutating func publish(_ bytes: [UInt8]) -> String {
        published += bytes
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The offset of the earliest stop string in `bytes`.
    private func firstMatch(in bytes: [UInt8]) -> Int? {
        stops.compactMap { bytes.firstRange(of: $0)?.lowerBound }.min()
    }

    /// The longest end of `bytes` that begins some stop string (it starts on a character boundary,
    /// as a stop string does).
    private func heldTail(of bytes: [UInt8]) -> Int {
        let longest = stops.map(\.count).max() ?? 1
        for n in stride(from: min(longest - 1, bytes.count), to: 0, by: -1) {
            let tail = bytes[(bytes.count - n)...]
            if stops.contains(where: { $0.count > n && $0.starts(with: tail) }) { return n }
        }
        return 0
    }

    private static let thinkOpen = Array("<think>".utf8)
    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
}
