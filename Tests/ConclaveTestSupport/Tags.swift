import Testing

extension Tag {
    /// Suites that run live relays, sockets and child processes (seconds each, not
    /// milliseconds). The quick local loop skips them; CI runs everything.
    @Tag public static var integration: Self
}
