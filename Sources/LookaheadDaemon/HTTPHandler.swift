import DaemonConfig
import Logging
import Lookahead
import LookaheadProtocol
import NIOCore
import NIOHTTP1
import OpenAIProtocol
import StepBatcher
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP connection: one request at a time (NIO's pipelining handler queues the next), the
/// OpenAI endpoints, `/health` and `/metrics`. A completion goes through the batcher like a
/// socket `ask`, with the same checks (AskPreparer), priority, owner and cancellation: a client
/// that disconnects cancels its request.
final class HTTPHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The completion being answered.
    private struct Active {
        var ticket: Ticket?
        let request: CompletionRequest
        let responder: CompletionResponder
        let prepared: PreparedAsk
        let keepAlive: Bool
        var splitter = ReasoningSplitter()
        /// Stream text not yet written: the client is not reading.
        var held = ReasoningSplitter.Delta()
    }

    private let slot: ServiceSlot
    private let settings: HTTPSettings
    private let unixSocket: Bool
    private let log = Logger(label: "lookaheadd.http")
    private var context: ChannelHandlerContext?
    private var peerUID: UInt32?
    private var admitted = false
    /// Why the connection gate turned this client away: told at its first request (HTTP has no
    /// way to answer before one), then the connection closes.
    private var refusal: OpenAIError?
    private var closing = false
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    /// A request is being handled (read whole, not yet answered).
    private var busy = false
    private var active: Active?
    private var readHeld = false
    private var clock: ConnectionClock
    /// For `requests_total`: the route asked for (`other` for any path the daemon does not serve)
    /// and the status it got.
    private var answering = (route: "other", status: 0)

    init(slot: ServiceSlot, settings: HTTPSettings, unixSocket: Bool) {
        self.slot = slot
        self.settings = settings
        self.unixSocket = unixSocket
        clock = ConnectionClock(limits: settings.limits, now: .now())
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        clock.lastActivity = context.eventLoop.now
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        if unixSocket {
            context.channel.peerCredentials().whenComplete { me.value.enter(uid: (try? $0.get())?.uid) }
        } else {
            enter(uid: nil)
        }
        context.fireChannelActive()
    }

    /// Past the connection limits a client gets 503 to its first request and the connection
    /// closes; one that sends none is closed after `frame_timeout_seconds`.
    private func enter(uid: UInt32?) {
        peerUID = uid
        if let refused = settings.gate.enter(uid: uid) {
            refusal = OpenAIError(status: 503, refused.message, type: "server_error", code: "busy")
            guard let context else { return }
            let channel = context.channel
            context.eventLoop.scheduleTask(in: ConnectionClock.amount(settings.limits.frameTimeoutSeconds)) {
                channel.close(promise: nil)
            }
            return
        }
        admitted = true
        armTimer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let ticket = active?.ticket { slot.current?.batcher.cancel(ticket) }
        active = nil
        clock.cancel()
        if admitted {
            admitted = false
            settings.gate.leave(uid: peerUID)
        }
        context.fireChannelInactive()
    }

    // MARK: Reading

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is BytesInSignal.Event else { return context.fireUserInboundEventTriggered(event) }
        clock.lastActivity = context.eventLoop.now
        if !busy, clock.partialSince == nil {
            clock.partialSince = clock.lastActivity
            armTimer()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            if let refusal {
                closing = true
                return respond(refusal, keepAlive: false)
            }
            head = h
            body = context.channel.allocator.buffer(capacity: 0)
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > settings.limits.maxFrameBytes {
                tooLarge(length)
            }
        case .body(var chunk):
            guard body != nil else { return }
            if body!.readableBytes + chunk.readableBytes > settings.limits.maxFrameBytes {
                return tooLarge(body!.readableBytes + chunk.readableBytes)
            }
            body!.writeBuffer(&chunk)
        case .end:
            guard let h = head, let b = body else { return }
            head = nil
            body = nil
            clock.partialSince = nil
            busy = true
            route(h, b)
        }
    }

    private func tooLarge(_ bytes: Int) {
        closing = true
        respond(OpenAIError(status: 413, "the request body is \(bytes) bytes, more than max_frame_bytes (\(settings.limits.maxFrameBytes))",
                            type: "invalid_request_error", code: "request_too_large"), keepAlive: false)
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable { context.read() } else { readHeld = true }
    }

    // MARK: Routing

    private func route(_ head: HTTPRequestHead, _ body: ByteBuffer) {
        let path = String(head.uri.prefix { $0 != "?" })
        let keepAlive = head.isKeepAlive
        let route = Route(rawValue: path)
        answering.route = route.map { "\(head.method) \($0.rawValue)" } ?? "other"
        guard let route else {
            return respond(OpenAIError(status: 404, "no such endpoint: \(head.method) \(path)", type: "not_found_error", code: "not_found"),
                           keepAlive: keepAlive)
        }
        guard head.method == route.method else {
            var headers = HTTPHeaders()
            headers.add(name: "allow", value: route.method.rawValue)
            return respond(OpenAIError(status: 405, "\(path) takes \(route.method.rawValue), not \(head.method)",
                                       type: "invalid_request_error", code: "method_not_allowed"),
                           keepAlive: keepAlive, headers: headers)
        }
        let methods = slot.current
        if route == .health {
            let state = methods == nil ? "loading" : (methods!.batcher.status.stopping ? "stopping" : "ok")
            return respond(status: state == "ok" ? .ok : .serviceUnavailable, json: ["status": .string(state)], keepAlive: keepAlive)
        }
        if let key = settings.apiKey, !Self.authorized(head.headers, key: key) {
            var headers = HTTPHeaders()
            headers.add(name: "www-authenticate", value: "Bearer")
            return respond(OpenAIError(status: 401, "a valid API key is required: Authorization: Bearer <the token in api_key_file>",
                                       type: "invalid_request_error", code: "invalid_api_key"),
                           keepAlive: keepAlive, headers: headers)
        }
        guard let methods else {
            return respond(OpenAIError(status: 503, "the models are still loading", type: "server_error", code: "loading"), keepAlive: keepAlive)
        }
        switch route {
        case .health: break
        case .models:
            respond(status: .ok, json: ModelList.body(ids: [methods.modelID], created: Self.startTime), keepAlive: keepAlive)
        case .metrics:
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
            respond(status: .ok, bytes: Array(methods.metricsText().utf8), headers: headers, keepAlive: keepAlive)
        case .chat, .completion:
            complete(route == .chat ? .chat : .completion, body, keepAlive: keepAlive, methods: methods)
        }
    }

    private enum Route: String {
        case health = "/health"
        case models = "/v1/models"
        case metrics = "/metrics"
        case chat = "/v1/chat/completions"
        case completion = "/v1/completions"

        var method: HTTPMethod { self == .chat || self == .completion ? .POST : .GET }
    }

    /// The bearer token compared in time independent of where it differs.
    static func authorized(_ headers: HTTPHeaders, key: [UInt8]) -> Bool {
        guard let value = headers.first(name: "authorization"), value.hasPrefix("Bearer ") else { return false }
        let given = Array(value.utf8.dropFirst("Bearer ".utf8.count))
        guard given.count == key.count else { return false }
        return zip(given, key).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static let startTime = Int64(time(nil))

    // MARK: Completions

    private func complete(_ endpoint: Endpoint, _ body: ByteBuffer, keepAlive: Bool, methods: Methods) {
        let asks = methods.asks, modelID = methods.modelID
        let work: @Sendable () -> Result<(CompletionRequest, PreparedAsk), OpenAIError> = {
            Result { () throws(OpenAIError) in try Self.prepare(endpoint, body, asks: asks, modelID: modelID) }
        }
        guard body.readableBytes >= Offload.threshold, let loop = context?.eventLoop else {
            return start(work(), keepAlive: keepAlive, methods: methods)
        }
        let me = NIOLoopBound(self, eventLoop: loop)
        settings.offload.run(on: loop, work).whenComplete { result in
            switch result {
            case .success(let prepared): me.value.start(prepared, keepAlive: keepAlive, methods: methods)
            case .failure: me.value.respond(Self.openAIError(.shuttingDown), keepAlive: false)
            }
        }
    }

    /// Parses, checks and tokenises: everything that can refuse a request before it is queued.
    private static func prepare(_ endpoint: Endpoint, _ body: ByteBuffer, asks: AskPreparer,
                                modelID: String) throws(OpenAIError) -> (CompletionRequest, PreparedAsk) {
        let object: JSONObject
        do { object = try JSONCodec.decodeObject(body.readableBytesView) } catch {
            throw .invalid("the body is not a JSON object: \(error.message)", param: nil)
        }
        let request = try CompletionRequest(endpoint, body: object)
        if let model = request.model, model != modelID {
            throw OpenAIError(status: 404, "the model '\(model)' does not exist; this server has '\(modelID)'",
                              type: "invalid_request_error", param: "model", code: "model_not_found")
        }
        do {
            return (request, try asks.prepare(request.ask))
        } catch {
            throw OpenAIError(error, param: request.param(forNative: error.field))
        }
    }

    private func start(_ prepared: Result<(CompletionRequest, PreparedAsk), OpenAIError>, keepAlive: Bool, methods: Methods) {
        guard let loop = context?.eventLoop, !closing else { return }
        let request: CompletionRequest, ask: PreparedAsk
        switch prepared {
        case .success(let p): (request, ask) = p
        case .failure(let error): return respond(error, keepAlive: keepAlive)
        }
        let responder = CompletionResponder(endpoint: request.endpoint, model: methods.modelID, created: Int64(time(nil)))
        active = Active(request: request, responder: responder, prepared: ask, keepAlive: keepAlive)
        let me = NIOLoopBound(self, eventLoop: loop)
        let sink: @Sendable (SessionUpdate) -> Void = { update in loop.execute { me.value.deliver(update) } }
        do {
            active?.ticket = try methods.batcher.submit(BatcherRequest(
                prompt: ask.prompt, config: ask.config, priority: .interactive, owner: peerUID, sink: sink))
        } catch {
            active = nil
            return respond(Self.openAIError(error), keepAlive: keepAlive)
        }
        guard request.stream else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        write(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
        if let first = responder.roleChunk() { event(first) }
    }

    private static func openAIError(_ error: BatcherError) -> OpenAIError {
        if case .shuttingDown = error { return OpenAIError(status: 503, "the daemon is shutting down", type: "server_error", code: "unavailable") }
        return OpenAIError(ProtocolError(error: error, field: "prompt"), param: nil)
    }

    private func deliver(_ update: SessionUpdate) {
        guard var a = active else { return }
        switch update {
        case .started:
            return
        case .step(let text, _, _):
            guard a.request.stream else { return }
            a.held.append(a.request.endpoint == .chat ? a.splitter.feed(text) : ReasoningSplitter.Delta(content: text))
            active = a
            if context?.channel.isWritable == true { flushHeld() }
        case .finished(let generation):
            let result = AskResult(generation, mode: a.prepared.config.mode, verifier: a.prepared.verifier)
            guard a.request.stream else {
                active = nil
                return respond(status: .ok, json: a.responder.body(result), keepAlive: a.keepAlive)
            }
            if a.request.endpoint == .chat {
                a.held.append(a.splitter.finish())
                active = a
            }
            flushHeld()
            event(a.responder.finalChunk(result))
            if a.request.includeUsage { event(a.responder.usageChunk(result)) }
            endStream(a)
        case .failed(let error):
            guard a.request.stream else {
                active = nil
                return respond(Self.openAIError(error), keepAlive: a.keepAlive)
            }
            // The status line went out with the first chunk: the error comes as an event.
            flushHeld()
            event(Self.openAIError(error).json)
            endStream(a)
        }
    }

    private func flushHeld() {
        guard var a = active, !a.held.isEmpty else { return }
        if let chunk = a.responder.textChunk(a.held) { event(chunk) }
        a.held = .init()
        active = a
    }

    private func endStream(_ a: Active) {
        active = nil
        writeData(Array("data: [DONE]\n\n".utf8))
        finishResponse(keepAlive: a.keepAlive)
    }

    private func event(_ json: JSONObject) {
        writeData(Array("data: ".utf8) + JSONCodec.encode(.object(json)) + Array("\n\n".utf8))
    }

    // MARK: Writing

    private func respond(_ error: OpenAIError, keepAlive: Bool, headers: HTTPHeaders = HTTPHeaders()) {
        respond(status: HTTPResponseStatus(statusCode: error.status), json: error.json, keepAlive: keepAlive, headers: headers)
    }

    private func respond(status: HTTPResponseStatus, json: JSONObject, keepAlive: Bool, headers: HTTPHeaders = HTTPHeaders()) {
        var headers = headers
        headers.add(name: "content-type", value: "application/json")
        respond(status: status, bytes: JSONCodec.encode(.object(json)), headers: headers, keepAlive: keepAlive)
    }

    private func respond(status: HTTPResponseStatus, bytes: [UInt8], headers: HTTPHeaders, keepAlive: Bool) {
        var headers = headers
        headers.add(name: "content-length", value: String(bytes.count))
        if !keepAlive || closing { headers.add(name: "connection", value: "close") }
        write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        writeData(bytes)
        finishResponse(keepAlive: keepAlive && !closing)
    }

    private func writeData(_ bytes: [UInt8]) {
        guard let context else { return }
        write(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes))))
    }

    private func write(_ part: HTTPServerResponsePart) {
        if case .head(let h) = part { answering.status = Int(h.status.code) }
        context?.writeAndFlush(wrapOutboundOut(part), promise: nil)
    }

    private func finishResponse(keepAlive: Bool) {
        guard let context else { return }
        busy = false
        slot.current?.metrics.count(method: answering.route, outcome: String(answering.status))
        answering = ("other", 0)
        clock.lastActivity = context.eventLoop.now
        let channel = context.channel
        let end = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            armTimer()
        } else {
            // Only the output closes: what the client is still sending (a body we refused) is read
            // and dropped, so the close does not reset the connection before the client has read
            // why. It closes fully when the client does, or a frame timeout later.
            closing = true
            let linger = ConnectionClock.amount(settings.limits.frameTimeoutSeconds)
            end.whenComplete { _ in
                channel.close(mode: .output, promise: nil)
                channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            clock.unwritableSince = nil
            flushHeld()
            if readHeld {
                readHeld = false
                context.read()
            }
        } else if clock.unwritableSince == nil {
            clock.unwritableSince = context.eventLoop.now
            armTimer()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Timing out

    private var idle: Bool { !busy }

    private func armTimer() {
        guard let context, admitted, !closing else { return }
        let me = NIOLoopBound(self, eventLoop: context.eventLoop)
        clock.arm(on: context.eventLoop, idle: idle) { me.value.timerFired() }
    }

    private func timerFired() {
        clock.fired()
        guard let context, !closing else { return }
        switch clock.expiry(at: context.eventLoop.now, idle: idle) {
        case .unfinishedRequest where head == nil:
            // Not even a whole request head: there is no request to answer.
            closing = true
            context.close(promise: nil)
        case .unfinishedRequest:
            closing = true
            respond(OpenAIError(status: 408, "a request was begun and not finished within \(settings.limits.frameTimeoutSeconds) s (frame_timeout_seconds)",
                                type: "invalid_request_error", code: "timeout"), keepAlive: false)
        case .stalledReader:
            log.notice("closing an HTTP connection whose stream went unread", metadata: ["seconds": "\(settings.limits.stalledReaderSeconds)"])
            closing = true
            context.close(promise: nil)
        case .idle:
            closing = true
            context.close(promise: nil)
        case nil:
            armTimer()
        }
    }
}
