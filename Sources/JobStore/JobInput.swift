import LookaheadProtocol

/// A batch input that cannot be queued, and where: `line 3: duplicate custom_id 'q7' (first on line 1)`.
public struct JobInputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 1-based line of the input; nil when the input as a whole is at fault (too large, empty).
    public var line: Int?
    /// The line's field at fault, for programs (`gamma`); nil when the line as a whole is.
    public var field: String?
    /// A sentence that names the field itself, without the line number.
    public var message: String

    public init(line: Int?, field: String? = nil, _ message: String) {
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// One request of a batch, checked line by line before anything is stored. Only `JobInput`
/// makes these, so `JobStore.submit` can trust what it is given.
public struct ValidatedLine: Sendable, Hashable {
    public let customID: String
    /// The `ask` parameters: the line without `custom_id`, nulls dropped, integral numbers as integers.
    public let request: JSONObject
    /// 1-based line of the input it came from (blank lines count), for errors the daemon finds
    /// in a request after this validation, such as a prompt too long for the model.
    public let line: Int

    init(customID: String, request: JSONObject, line: Int) {
        self.customID = customID
        self.request = request
        self.line = line
    }
}

/// Validation of batch input: JSONL in the shape of one `ask` request per line,
/// `{"custom_id": "q1", "prompt": "…", "max_tokens": 256}`. The rules are those of `ask`'s
/// parameters in docs/protocol.md, checked here so that a bad line fails the submission instead
/// of failing overnight. As on the wire, a field sent as null counts as absent.
public enum JobInput {
    public static let defaultMaxBytes = 64 << 20

    /// Every non-blank line must be a request; blank lines (and a trailing newline, CRLF line
    /// ends, a UTF-8 byte-order mark) are allowed, because editors and `jq -c` produce them.
    /// The size is judged before anything is parsed.
    public static func validate(
        jsonl input: some Collection<UInt8>, maxBytes: Int = defaultMaxBytes
    ) throws(JobInputError) -> [ValidatedLine] {
        let size = input.count
        guard size <= maxBytes else {
            throw JobInputError(line: nil, "the input is \(size) bytes, over the limit of \(maxBytes) bytes")
        }
        var checker = Checker()
        var lineNumber = 0
        for var line in Array(input).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if lineNumber == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard String(validating: line, as: UTF8.self) != nil else {
                throw JobInputError(line: lineNumber, "not valid UTF-8")
            }
            let value: JSONValue
            do {
                value = try JSONCodec.decode(line)
            } catch {
                throw JobInputError(line: lineNumber, error.message)
            }
            try checker.check(value, line: lineNumber)
        }
        return try checker.finish()
    }

    /// The same rules for lines already parsed (the `lines` array of `jobs.submit`); line n is
    /// element n-1.
    public static func validate(lines: [JSONValue]) throws(JobInputError) -> [ValidatedLine] {
        var checker = Checker()
        for (index, value) in lines.enumerated() { try checker.check(value, line: index + 1) }
        return try checker.finish()
    }

    private enum Rule {
        case choice([String])
        case integer(ClosedRange<Int64>, String)
        /// Bounds, and whether the lower one is excluded (top_p > 0).
        case number(ClosedRange<Double>, lowerExcluded: Bool, String)
    }

    private static let rules: [String: Rule] = [
        "mode": .choice(["ar", "sd", "lookahead", "lookahead+sd"]),
        "verifier": .choice(["exact", "normalized", "embedding", "judge"]),
        "max_tokens": .integer(1...Int64.max, "an integer ≥ 1"),
        "seed": .integer(0...Int64.max, "an integer ≥ 0"),
        "gamma": .integer(0...16, "an integer from 0 to 16"),
        "width": .integer(1...2, "an integer from 1 to 2"),
        "top_k": .integer(1...Int64.max, "an integer ≥ 1"),
        "temperature": .number(0...Double.greatestFiniteMagnitude, lowerExcluded: false, "a number ≥ 0"),
        "top_p": .number(0...1, lowerExcluded: true, "a number > 0 and ≤ 1"),
    ]

    /// Accumulates lines and remembers where each custom id was first seen.
    private struct Checker {
        var lines: [ValidatedLine] = []
        var firstLine: [String: Int] = [:]

        mutating func check(_ value: JSONValue, line: Int) throws(JobInputError) {
            guard let object = value.objectValue else {
                throw JobInputError(line: line, "a line must be a JSON object, got \(value.kind)")
            }
            let customID = try requiredString(object, "custom_id", line: line)
            if let first = firstLine[customID] {
                throw JobInputError(line: line, field: "custom_id", "duplicate custom_id '\(customID)' (first on line \(first))")
            }
            // The prompt: one text, or a conversation, as `ask` takes them.
            if let messages = object["messages"], !messages.isNull {
                if object["prompt"].map({ !$0.isNull }) ?? false {
                    throw JobInputError(line: line, field: "messages", "give prompt or messages, not both")
                }
                do { _ = try ChatTurn.conversation(messages) } catch {
                    throw JobInputError(line: line, field: error.field, error.message)
                }
            } else {
                _ = try requiredString(object, "prompt", line: line)
            }

            var request = JSONObject()
            for (key, field) in object where key != "custom_id" && !field.isNull {
                if key == "prompt" || key == "messages" {
                    request[key] = field
                    continue
                }
                guard let rule = rules[key] else {
                    throw JobInputError(line: line, field: key, "unknown field '\(key)'")
                }
                request[key] = try apply(rule, to: field, key, line: line)
            }
            firstLine[customID] = line
            lines.append(ValidatedLine(customID: customID, request: request, line: line))
        }

        func finish() throws(JobInputError) -> [ValidatedLine] {
            guard !lines.isEmpty else { throw JobInputError(line: nil, "the input has no lines") }
            return lines
        }

        private func requiredString(_ object: JSONObject, _ key: String, line: Int) throws(JobInputError) -> String {
            guard let value = object[key], !value.isNull else {
                throw JobInputError(line: line, field: key, "\(key) is required")
            }
            guard let string = value.stringValue else {
                throw JobInputError(line: line, field: key, "\(key) must be a string, got \(value.kind)")
            }
            guard !string.isEmpty else { throw JobInputError(line: line, field: key, "\(key) must not be empty") }
            return string
        }

        private func apply(_ rule: Rule, to value: JSONValue, _ key: String, line: Int) throws(JobInputError) -> JSONValue {
            switch rule {
            case .choice(let allowed):
                guard let string = value.stringValue, allowed.contains(string) else {
                    let got = value.stringValue.map { "'\($0)'" } ?? value.kind
                    throw JobInputError(line: line, field: key,
                                        "\(key) must be one of \(allowed.joined(separator: ", ")), got \(got)")
                }
                return value
            case .integer(let range, let expected):
                // 512.0 is accepted, as `ask` accepts it, and stored as the integer it is.
                guard let int = value.intValue, range.contains(int) else {
                    throw JobInputError(line: line, field: key, "\(key) must be \(expected), got \(value.kind)")
                }
                return .int(int)
            case .number(let range, let lowerExcluded, let expected):
                guard let number = value.doubleValue, range.contains(number),
                      !(lowerExcluded && number == range.lowerBound)
                else {
                    throw JobInputError(line: line, field: key, "\(key) must be \(expected), got \(value.kind)")
                }
                return value
            }
        }
    }
}
