import LookaheadProtocol
import OpenAIProtocol

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

    /// The same error, found on `line`.
    func at(_ line: Int) -> JobInputError {
        var error = self
        error.line = line
        return error
    }
}

/// One request of a batch, checked line by line before anything is stored. Only `JobInput`
/// makes these, so `JobStore.submit` can trust what it is given.
public struct ValidatedLine: Sendable, Hashable {
    public let customID: String
    public let format: JobFormat
    /// As stored. Native: the `ask` parameters, the line without `custom_id`, nulls dropped,
    /// integral numbers as integers. OpenAI: `{"url", "body"}`, the body as given.
    public let request: JSONObject
    /// 1-based line of the input it came from (blank lines count), for errors the daemon finds
    /// in a request after this validation, such as a prompt too long for the model.
    public let line: Int

    init(customID: String, format: JobFormat, request: JSONObject, line: Int) {
        self.customID = customID
        self.format = format
        self.request = request
        self.line = line
    }

    /// What the engine is asked; validation already translated the line this way once.
    public func ask() throws(JobInputError) -> LineAsk { try LineAsk(format: format, request: request) }
}

/// Validation of batch input: JSONL in the shape of one `ask` request per line,
/// `{"custom_id": "q1", "prompt": "…", "max_tokens": 256}`, or of OpenAI's Batch input,
/// `{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {…}}`; a job is
/// all one or all the other. The rules are those of `ask`'s parameters in docs/protocol.md,
/// checked here so that a bad line fails the submission instead of failing overnight. As on the
/// wire, a field sent as null counts as absent.
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

    /// `ask` params with no rule here: the daemon judges them when the job is submitted
    /// (AskPreparer), line by line, with the same errors.
    private static let daemonJudged: Set<String> = ["stop", "template", "adaptive", "cache_prompt"]

    /// Accumulates lines and remembers where each custom id was first seen, and the job's format
    /// with the line that set it.
    private struct Checker {
        var lines: [ValidatedLine] = []
        var firstLine: [String: Int] = [:]
        var format: (JobFormat, line: Int)?

        mutating func check(_ value: JSONValue, line: Int) throws(JobInputError) {
            guard let object = value.objectValue else {
                throw JobInputError(line: line, "a line must be a JSON object, got \(value.kind)")
            }
            let customID = try requiredString(object, "custom_id", line: line)
            if let first = firstLine[customID] {
                throw JobInputError(line: line, field: "custom_id", "duplicate custom_id '\(customID)' (first on line \(first))")
            }
            let lineFormat: JobFormat = OpenAIBatch.markers.contains { object[$0].map { !$0.isNull } ?? false } ? .openAI : .native
            if let (jobFormat, first) = format, jobFormat != lineFormat {
                throw JobInputError(line: line, "\(Self.looks(lineFormat)) in a job whose line \(first) is \(Self.looks(jobFormat)); "
                                    + "a job's lines are all in one format")
            }
            let request: JSONObject
            switch lineFormat {
            case .native: request = try native(object, line: line)
            case .openAI: request = try openAI(object, line: line)
            }
            format = (lineFormat, line)
            firstLine[customID] = line
            lines.append(ValidatedLine(customID: customID, format: lineFormat, request: request, line: line))
        }

        private static func looks(_ format: JobFormat) -> String {
            switch format {
            case .native: return "a native line {custom_id, prompt or messages, …}"
            case .openAI: return "an OpenAI Batch line {custom_id, method, url, body}"
            }
        }

        /// The `ask` parameters of a native line, normalised.
        private func native(_ object: JSONObject, line: Int) throws(JobInputError) -> JSONObject {
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
                if daemonJudged.contains(key) {
                    request[key] = field
                    continue
                }
                guard let rule = rules[key] else {
                    throw JobInputError(line: line, field: key, "unknown field '\(key)'")
                }
                do { request[key] = try apply(rule, to: field, named: key) } catch { throw error.at(line) }
            }
            return request
        }

        /// An OpenAI line's `{"url", "body"}`: the envelope checked here, the body translated as
        /// the HTTP surface translates it, and what it amounts to held to a native line's rules.
        private func openAI(_ object: JSONObject, line: Int) throws(JobInputError) -> JSONObject {
            if let stray = object.keys.first(where: { !OpenAIBatch.keys.contains($0) }) {
                throw JobInputError(line: line, field: stray, "unknown field '\(stray)' (an OpenAI Batch line has custom_id, method, url and body)")
            }
            let method = try requiredString(object, "method", line: line)
            guard method == "POST" else { throw JobInputError(line: line, field: "method", "method must be POST, got '\(method)'") }
            let url = try requiredString(object, "url", line: line)
            guard Endpoint(rawValue: url) != nil else {
                throw JobInputError(line: line, field: "url", "url must be one of \(OpenAIBatch.urls), got '\(url)'")
            }
            guard let body = object["body"], !body.isNull else { throw JobInputError(line: line, field: "body", "body is required") }
            guard body.objectValue != nil else { throw JobInputError(line: line, field: "body", "body must be an object, got \(body.kind)") }
            let request: JSONObject = ["url": .string(url), "body": body]
            let ask: LineAsk
            do { ask = try LineAsk(format: .openAI, request: request) } catch { throw error.at(line) }
            if let messages = ask.params["messages"] {
                do { _ = try ChatTurn.conversation(messages) } catch {
                    throw ask.lineError(error.message, field: error.field).at(line)
                }
            }
            // Parameters without a rule here (daemonJudged) are the daemon's to judge.
            for (key, value) in ask.params.object where !value.isNull {
                guard let rule = rules[key] else { continue }
                let name = ask.field(forNative: key) ?? key
                do { _ = try apply(rule, to: value, named: name) } catch {
                    throw ask.lineError(error.message, field: key).at(line)
                }
            }
            return request
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

        /// `name` is the line's own name for the field; the error has no line yet.
        private func apply(_ rule: Rule, to value: JSONValue, named name: String) throws(JobInputError) -> JSONValue {
            switch rule {
            case .choice(let allowed):
                guard let string = value.stringValue, allowed.contains(string) else {
                    let got = value.stringValue.map { "'\($0)'" } ?? value.kind
                    throw JobInputError(line: nil, field: name, "\(name) must be one of \(allowed.joined(separator: ", ")), got \(got)")
                }
                return value
            case .integer(let range, let expected):
                // 512.0 is accepted, as `ask` accepts it, and stored as the integer it is.
                guard let int = value.intValue, range.contains(int) else {
                    throw JobInputError(line: nil, field: name, "\(name) must be \(expected), got \(value.kind)")
                }
                return .int(int)
            case .number(let range, let lowerExcluded, let expected):
                guard let number = value.doubleValue, range.contains(number),
                      !(lowerExcluded && number == range.lowerBound)
                else {
                    throw JobInputError(line: nil, field: name, "\(name) must be \(expected), got \(value.kind)")
                }
                return value
            }
        }
    }
}
