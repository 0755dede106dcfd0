// libFuzzer harness for the wire protocol: framing, the json-c codec, and message and params parsing.
// Not a SwiftPM target: scripts/fuzz.sh compiles it together with Sources/LookaheadProtocol into one
// module (so internals such as Request.isValidID are in reach) with -sanitize=fuzzer,address.
// Every property below traps when it fails, and a trap is what libFuzzer reports and saves.

/// The first byte says what the rest is, so one corpus reaches every parser: 0 a byte stream of
/// frames, 1 a JSON text (checked as every kind of message when it is an object), 2 the params of
/// a request (so mutations land on params without having to keep an envelope intact).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 3 {
    case 0: fuzzFrames(rest)
    case 1: fuzzJSON(rest)
    default: fuzzParams(rest)
    }
    return 0
}

func check(_ holds: Bool, _ what: @autoclosure () -> String, line: UInt = #line) {
    if !holds { fatalError("property violated: \(what())", line: line) }
}

/// For what must not fail: a message this module built must survive its own wire.
func must<T>(_ what: @autoclosure () -> String, line: UInt = #line, _ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        fatalError("property violated: \(what()): \(error)", line: line)
    }
}

/// Everything in the module throws `ProtocolError`, so the daemon can answer with what it caught.
func outcome<T>(line: UInt = #line, _ body: () throws -> T) -> Result<T, ProtocolError> {
    do {
        return .success(try body())
    } catch let error as ProtocolError {
        return .failure(error)
    } catch {
        fatalError("property violated: threw \(error), not a ProtocolError", line: line)
    }
}

// MARK: - Frames

/// Bytes 0–1 set the decoder's limit (1…65536, so inputs reach it), byte 2 how the stream is cut
/// into chunks, the rest is the stream.
func fuzzFrames(_ input: [UInt8]) {
    guard input.count >= 3 else { return }
    let maxPayload = (Int(input[0]) << 8 | Int(input[1])) + 1
    var sizes = ChunkSizes(input[2])
    let stream = input[3...]

    var decoder = FrameDecoder(maxPayload: maxPayload)
    var payloads: [[UInt8]] = []
    var failure: ProtocolError?
    var fed = stream.startIndex
    while fed < stream.endIndex {
        let end = fed + min(sizes.next(), stream.endIndex - fed)
        decoder.feed(stream[fed..<end])
        fed = end
        check(decoder.pendingBytes <= maxPayload + Frame.headerSize, "decoder holds \(decoder.pendingBytes) bytes, limit \(maxPayload)")
        while true {
            do {
                guard let payload = try decoder.next() else { break }
                check(failure == nil, "a frame handed out after the error \(failure!)")
                payloads.append(payload)
            } catch {
                check(failure == nil || failure == error, "the error changed from \(failure!) to \(error)")
                failure = error
                break
            }
        }
    }

    // The frames handed out, re-framed, are exactly the start of the stream.
    let reframed = payloads.flatMap { header($0.count) + $0 }
    check(stream.starts(with: reframed), "frames out differ from the bytes in")
    let after = stream.dropFirst(reframed.count)
    if let failure {
        check(after.count >= Frame.headerSize, "an error before a whole header arrived")
        let length = after.prefix(Frame.headerSize).reduce(0) { $0 << 8 | Int($1) }
        check(length == 0 ? failure.code == .invalidRequest : length > maxPayload && failure.code == .tooLarge,
              "header declaring \(length) bytes (limit \(maxPayload)) refused with \(failure)")
        check(decoder.pendingBytes == Frame.headerSize, "a refused frame keeps \(decoder.pendingBytes) bytes")
    } else {
        check(decoder.pendingBytes == after.count, "\(after.count) bytes left over, \(decoder.pendingBytes) pending")
        if after.count >= Frame.headerSize {
            let length = after.prefix(Frame.headerSize).reduce(0) { $0 << 8 | Int($1) }
            check((1...maxPayload).contains(length) && after.count < Frame.headerSize + length,
                  "a bad or complete frame of \(length) bytes left pending")
        }
    }

    for payload in payloads {
        guard let object = fuzzJSON(payload) else { continue }
        checkEncoder(object, maxPayload: maxPayload)
    }
}

/// A frame the encoder writes is the compact JSON behind its length, or `too_large` when that
/// would be over the limit; a decoder with the same limit gives the payload back.
func checkEncoder(_ object: JSONObject, maxPayload: Int) {
    let json = JSONCodec.encode(.object(object))
    switch outcome({ try FrameEncoder(maxPayload: maxPayload).encode(object) }) {
    case .success(let frame):
        check(frame == header(json.count) + json, "the encoder wrote other bytes than header + JSON")
        var decoder = FrameDecoder(maxPayload: maxPayload)
        decoder.feed(frame)
        check(must("decoding an encoded frame") { try decoder.next() } == json, "a frame did not come back whole")
    case .failure(let error):
        check(error.code == .tooLarge && json.count > maxPayload, "encoding \(json.count) bytes failed with \(error)")
    }
}

/// Chunk lengths for feeding the decoder: the top three bits pick the longest chunk, the rest
/// seed the sequence, so one byte reaches byte-at-a-time feeding and whole-stream feeding alike.
struct ChunkSizes {
    private var state: UInt32
    private let longest: UInt32

    init(_ byte: UInt8) {
        longest = [1, 2, 3, 5, 8, 64, 4096, 1 << 17][Int(byte >> 5)]
        state = UInt32(byte & 0x1F) &* 0x9E37_79B9 | 1
    }

    mutating func next() -> Int {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return 1 + Int(state % longest)
    }
}

func header(_ length: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) } }

// MARK: - JSON

/// The object, when `bytes` is one, after it went through every message parser.
@discardableResult
func fuzzJSON(_ bytes: [UInt8]) -> JSONObject? {
    let value = checkCodec(bytes)
    let object = outcome { try JSONCodec.decodeObject(bytes) }
    switch (value, object) {
    case (.object(let expected)?, .success(let object)):
        check(object == expected, "decodeObject and decode disagree")
        checkMessages(object)
        return object
    case (let other?, .failure(let error)):
        check(error == ProtocolError(.invalidRequest, "a message must be a JSON object, got \(other.kind)"),
              "refused \(other.kind) with \(error)")
    case (nil, .failure):
        break
    default:
        check(false, "decodeObject and decode disagree on what \(bytes) is")
    }
    return nil
}

/// Decodes, and checks what the codec promises of whatever it accepts.
func checkCodec(_ bytes: [UInt8]) -> JSONValue? {
    let value: JSONValue
    do {
        value = try JSONCodec.decode(bytes)
    } catch {
        check(error.code == .invalidRequest && error.message.hasPrefix("invalid JSON: "), "decode failed with \(error)")
        return nil
    }
    // docs/protocol.md: "invalid UTF-8 is refused".
    check(String(validating: bytes, as: UTF8.self) != nil, "accepted invalid UTF-8")
    check(depth(value) <= JSONCodec.maxDepth, "accepted nesting deeper than \(JSONCodec.maxDepth)")
    let text = JSONCodec.encode(value)
    let back = must("decoding what the codec wrote") { try JSONCodec.decode(text) }
    check(back == value && back.hashValue == value.hashValue, "round trip changed \(value) into \(back)")
    check(JSONCodec.encode(back) == text, "encoding \(value) twice gave different text")
    return value
}

func depth(_ value: JSONValue) -> Int {
    switch value {
    case .array(let items): return 1 + (items.map(depth).max() ?? 0)
    case .object(let fields): return 1 + (fields.map { depth($0.value) }.max() ?? 0)
    default: return 0
    }
}

// MARK: - Messages

/// Through the module's own wire and back, as the daemon sends and a client reads.
func wire(_ json: JSONObject) -> JSONObject {
    let frame = must("framing a message") { try FrameEncoder().encode(json) }
    var decoder = FrameDecoder()
    decoder.feed(frame)
    let payload = must("unframing a message") { try decoder.next() }
    check(payload != nil && decoder.pendingBytes == 0, "a whole frame did not come out whole")
    return must("decoding a message") { try JSONCodec.decodeObject(payload!) }
}

func checkMessages(_ object: JSONObject) {
    checkRequest(object)
    checkServerMessage(object)

    if let event = parsed({ try Event(json: object) }) {
        // Traps in the initialiser's precondition if parsing let `id` or `event` into data.
        check(Event(id: event.id, event: event.event, data: event.data) == event, "event rebuilt differs")
        check(must("event round trip") { try Event(json: wire(event.json)) } == event, "event round trip")
    }
    if let result = parsed({ try ResultReply(json: object) }) {
        check(must("result round trip") { try ResultReply(json: wire(result.json)) } == result, "result round trip")
    }
    if let reply = parsed({ try ErrorReply(json: object) }) {
        check(reply.id.map(Request.isValidID) ?? true, "error reply with an unusable id \(reply.id!)")
        check(must("error reply round trip") { try ErrorReply(json: wire(reply.json)) } == reply, "error reply round trip")
        checkError(reply.error)
    }
}

/// Parse failures of messages are `invalid_request`, whatever the input.
func parsed<T>(line: UInt = #line, _ parse: () throws -> T) -> T? {
    switch outcome(line: line, parse) {
    case .success(let value):
        return value
    case .failure(let error):
        check(error.code == .invalidRequest, "parse failed with \(error)", line: line)
        checkError(error)
        return nil
    }
}

func checkError(_ error: ProtocolError) {
    check(error.message.utf8.count <= ProtocolError.maxMessageBytes, "message of \(error.message.utf8.count) bytes")
    check((error.field?.utf8.count ?? 0) <= ProtocolError.maxFieldBytes, "field of \(error.field!.utf8.count) bytes")
    check(must("error body round trip") { try ProtocolError(json: error.json) } == error, "error body round trip")
}

func checkRequest(_ object: JSONObject) {
    do {
        let request = try Request(json: object)
        check(Request.isValidID(request.id) && !request.method.isEmpty, "accepted id \(request.id), method '\(request.method)'")
        check(object.keys.allSatisfy(["id", "method", "params"].contains), "accepted the fields \(object.keys)")
        check(must("request round trip") { try Request(json: wire(request.json)) } == request, "request round trip")
        checkParams(request.params)
    } catch {
        checkError(error)
        let named = ["id", "method"] + object.keys.map { ProtocolError.clamped($0, to: ProtocolError.maxFieldBytes) }
        check(error.code == .invalidRequest && error.field.map(named.contains) == true, "request refused with \(error)")
        // The daemon's answer: with the request's id whenever that id is usable.
        let reply = ErrorReply(replyingTo: object, error: error)
        let usable: JSONValue? = switch object["id"] {
        case .int?: object["id"]
        case .string(let s)? where s.utf8.count <= Request.maxIDBytes: object["id"]
        default: nil
        }
        check(reply.id == usable, "error reply to id \(String(describing: object["id"])) has id \(String(describing: reply.id))")
        check(must("error reply as a server message") { try ServerMessage(json: wire(reply.json)) } == .error(reply),
              "error reply did not read back")
    }
}

func checkServerMessage(_ object: JSONObject) {
    guard let message = parsed({ try ServerMessage(json: object) }) else { return }
    let kinds = ["event", "result", "error"].filter { object[$0] != nil }
    check(kinds.count == 1, "a server message with \(kinds)")
    check(message.isFinal == (kinds != ["event"]), "isFinal wrong for \(kinds)")
    check(message.id.map(Request.isValidID) ?? (kinds == ["error"]), "server message with id \(String(describing: message.id))")
    check(must("server message round trip") { try ServerMessage(json: wire(message.json)) } == message,
          "server message round trip")
}

// MARK: - Params

func fuzzParams(_ bytes: [UInt8]) {
    guard let value = checkCodec(bytes) else { return }
    checkRequest(["id": 1, "method": "ask", "params": value])
}

private enum Mode: String, CaseIterable { case ar, sd, lookahead, lookaheadSD = "lookahead+sd" }

private let askParams: Set<String> = [
    "prompt", "messages", "mode", "gamma", "width", "verifier", "temperature", "top_p", "top_k", "seed", "max_tokens", "adaptive",
]

/// Each accessor against what docs/protocol.md and Params say it reads, for every key sent and
/// for keys that are absent.
func checkParams(_ params: Params) {
    for key in params.object.keys + ["prompt", "max_tokens", "absent"] {
        let raw = params.object[key].flatMap { $0 == .null ? nil : $0 }
        check(params[key] == raw, "params[\(key)] is \(String(describing: params[key]))")
        checkAccessor(params, key, "a string", string, { try $0.optionalString(key) }, { try $0.string(key) })
        checkAccessor(params, key, "an integer", exactInt, { try $0.optionalInt(key) }, { try $0.int(key) })
        checkAccessor(params, key, "a number", number, { try $0.optionalDouble(key) }, { try $0.double(key) })
        checkAccessor(params, key, "a boolean", bool, { try $0.optionalBool(key) }, { try $0.bool(key) })

        let choice = outcome { try params.optionalChoice(key, as: Mode.self) }
        switch raw {
        case nil:
            check(choice == .success(nil), "choice \(key) absent gave \(choice)")
        case .string(let s)?:
            let allowed = Mode.allCases.map(\.rawValue).joined(separator: ", ")
            let refusal = ProtocolError(.invalidParams, "\(key) must be one of \(allowed), got '\(s)'", field: key)
            check(choice == (Mode(rawValue: s).map { .success($0) } ?? .failure(refusal)), "choice \(key) gave \(choice)")
        case let other?:
            check(choice == .failure(wrongType(key, "a string", other)), "choice \(key) of \(other.kind) gave \(choice)")
        }
    }
    if let messages = params["messages"] { checkConversation(messages) }
    var refusal: ProtocolError?
    do { try params.rejectUnknown(allowed: askParams) } catch { refusal = error }
    let stray = params.object.keys.first { !askParams.contains($0) }
    check(refusal == stray.map { ProtocolError(.invalidParams, "unknown parameter \($0)", field: $0) },
          "rejectUnknown refused \(String(describing: refusal)) with stray \(String(describing: stray))")
}

/// A conversation is accepted only as docs/protocol.md describes it, and a refusal names the turn.
func checkConversation(_ value: JSONValue) {
    switch outcome({ try ChatTurn.conversation(value) }) {
    case .success(let turns):
        let list = value.arrayValue ?? []
        check(turns.count == list.count && (1...ChatTurn.maxTurns).contains(turns.count), "\(turns.count) turns from \(list.count)")
        check(turns.last?.role == .user, "a conversation ending with \(String(describing: turns.last?.role))")
        for (turn, element) in zip(turns, list) {
            check(element.objectValue?.keys.allSatisfy(["role", "content"].contains) == true, "accepted turn \(element)")
            check(element.objectValue?["content"] == .string(turn.content) && element.objectValue?["role"] == .string(turn.role.rawValue),
                  "turn \(element) read as \(turn)")
        }
    case .failure(let error):
        checkError(error)
        check([.invalidParams, .tooLarge].contains(error.code) && error.field?.hasPrefix("messages") == true,
              "conversation refused with \(error)")
    }
}

// What each accessor should read, written from the type rules rather than through JSONValue's own accessors.

private func string(_ value: JSONValue) -> String? {
    if case .string(let s) = value { return s }
    return nil
}

/// An integer, or a double with no fraction inside Int's range (a client may print 512 as 512.0).
private func exactInt(_ value: JSONValue) -> Int? {
    switch value {
    case .int(let i): return Int(i)
    case .double(let d) where d.rounded(.towardZero) == d && d >= -0x1p63 && d < 0x1p63: return Int(d)
    default: return nil
    }
}

private func number(_ value: JSONValue) -> Double? {
    switch value {
    case .int(let i): return Double(i)
    case .double(let d): return d
    default: return nil
    }
}

private func bool(_ value: JSONValue) -> Bool? {
    if case .bool(let b) = value { return b }
    return nil
}

private func wrongType(_ key: String, _ expected: String, _ value: JSONValue) -> ProtocolError {
    ProtocolError(.invalidParams, "\(key) must be \(expected), got \(value.kind)", field: key)
}

private func checkAccessor<T: Equatable>(
    _ params: Params, _ key: String, _ expected: String, _ read: (JSONValue) -> T?,
    _ optional: (Params) throws -> T?, _ required: (Params) throws -> T
) {
    let wanted: Result<T?, ProtocolError> = switch params[key] {
    case nil: .success(nil)
    case let value?: read(value).map { .success($0) } ?? .failure(wrongType(key, expected, value))
    }
    let got = outcome { try optional(params) }
    check(got == wanted, "optional \(expected) \(key): \(got), expected \(wanted)")
    let wantedRequired = wanted.flatMap { value -> Result<T, ProtocolError> in
        value.map { .success($0) } ?? .failure(ProtocolError(.invalidParams, "\(key) is required", field: key))
    }
    let gotRequired = outcome { try required(params) }
    check(gotRequired == wantedRequired, "required \(expected) \(key): \(gotRequired), expected \(wantedRequired)")
}
