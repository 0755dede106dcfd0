#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with a condition variable: the engine thread sleeps on it while idle, and
/// other threads wake it when they enqueue or cancel work.
final class Mutex: @unchecked Sendable {
    fileprivate var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

final class Condition: @unchecked Sendable {
    private var cond = pthread_cond_t()
    init() {
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }
    deinit { pthread_cond_destroy(&cond) }

    func signal() { pthread_cond_broadcast(&cond) }

    /// Waits (the caller holds `mutex`) until signalled or `seconds` pass.
    func wait(_ mutex: Mutex, seconds: Double) {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let ns = Int(ts.tv_nsec) + Int(seconds * 1e9)
        ts.tv_sec += ns / 1_000_000_000
        ts.tv_nsec = ns % 1_000_000_000
        pthread_cond_timedwait(&cond, &mutex.mutex, &ts)
    }
}

/// Runs `body` on a new named thread (the engine thread: a real thread, never a Swift
/// concurrency pool thread, which blocking decode calls would starve).
func spawnThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_detach(thread)
}
