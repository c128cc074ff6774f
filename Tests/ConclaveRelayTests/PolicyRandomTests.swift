import ConclaveProtocol
import ConclaveRelay
import Testing

import ConclaveTestSupport

/// What one client would know if it applied every message the policy sent it, in order.
/// Comparing it with the policy after each step proves the events are complete and correct.
struct PolicyClientMirror {
    var waitingIndex: ParticipantIndex?
    var index: ParticipantIndex?
    var roster: [ParticipantIndex: RosterEntry] = [:]
    var settings: RoomSettings?
    var recording = false
    var knownWaiting: Set<ParticipantIndex> = []
    /// Knocks followed by `joined` (an admission, or a direct one without a waiting room).
    var knockedThenJoined = Set<ParticipantIndex>()
    var problems: [String] = []

    var isAdmitted: Bool { index != nil }
    var role: Role? { index.flatMap { roster[$0]?.role } }

    /// The creator starts with ROOM_CREATED (sent by the caller): itself as host.
    static func creator(of policy: RoomPolicy) -> PolicyClientMirror {
        var mirror = PolicyClientMirror()
        mirror.index = policy.roster.first?.index
        for entry in policy.roster { mirror.roster[entry.index] = entry }
        mirror.settings = policy.settings
        return mirror
    }

    mutating func problem(_ text: String) { problems.append(text) }

    mutating func receive(_ message: RelayMessage) {
        switch message {
        case let .waiting(waiting):
            if isAdmitted || waitingIndex != nil { problem("WAITING twice or after admission") }
            waitingIndex = waiting.index
        case let .admitted(admitted):
            if isAdmitted { problem("ADMITTED twice") }
            if let waitingIndex, waitingIndex != admitted.index { problem("admitted under another index") }
            index = admitted.index
            roster = [:]
            for entry in admitted.roster {
                if roster[entry.index] != nil { problem("duplicate roster index \(entry.index)") }
                roster[entry.index] = entry
            }
            if roster[admitted.index]?.role != admitted.role { problem("ADMITTED role differs from its roster entry") }
            settings = admitted.settings
            recording = admitted.recording
        case let .knock(knock):
            guard isAdmitted, role == .host || role == .cohost else { return problem("KNOCK to a non-host") }
            if !knownWaiting.insert(knock.index).inserted { problem("KNOCK twice for \(knock.index)") }
        case let .event(event):
            guard isAdmitted else { return problem("EVENT \(event.event.kind) to a non-admitted connection") }
            apply(event.event)
        case .commandOK, .error:
            break
        case .welcome, .roomCreated, .pong, .frame, .mediaSession, .redirect:
            problem("unexpected \(message.type) from the policy")
        }
    }

    private mutating func apply(_ event: RoomEvent) {
        func update(_ index: ParticipantIndex, _ change: (inout RosterEntry) -> Void) {
            guard var entry = roster[index] else { return problem("\(event.kind) about unknown \(index)") }
            change(&entry)
            roster[index] = entry
        }
        switch event {
        case let .joined(index, identity, role):
            if roster[index] != nil { problem("joined twice: \(index)") }
            roster[index] = RosterEntry(index: index, identity: identity, role: role, state: [])
            // Without a waiting room the host's KNOCK comes just before `joined` (5.4).
            if knownWaiting.remove(index) != nil { knockedThenJoined.insert(index) }
        case let .left(index, _), let .removed(index):
            if roster.removeValue(forKey: index) == nil { problem("\(event.kind) of unknown \(index)") }
        case let .muted(index): update(index) { $0.state.insert(.muted) }
        case let .unmuted(index): update(index) { $0.state.remove(.muted) }
        case let .roleChanged(index, role):
            update(index) { $0.role = role }
            if index == self.index, role == .participant { knownWaiting = [] }
        case let .presenterChanged(index, granted):
            update(index) { if granted { $0.state.insert(.presenter) } else { $0.state.remove(.presenter) } }
        case .locked: settings?.locked = true
        case .unlocked: settings?.locked = false
        case let .recording(on):
            recording = on
            for key in roster.keys { roster[key]!.state.remove(.recordingAcknowledged) }
        case let .handRaised(index): update(index) { $0.state.insert(.handRaised) }
        case let .handLowered(index): update(index) { $0.state.remove(.handRaised) }
        case let .unmuteRequested(index):
            if index != self.index { problem("unmute_requested about someone else") }
        case let .settingChanged(change):
            if var current = settings { change.apply(to: &current); settings = current }
        case .recordingUnacknowledged:
            if role != .host { problem("recording_unacknowledged to a non-host") }
        case let .waitingLeft(index), let .waitingDecided(index, _):
            if role != .host && role != .cohost { problem("\(event.kind) to a non-host") }
            if knownWaiting.remove(index) == nil && knockedThenJoined.remove(index) == nil { problem("\(event.kind) for \(index) never knocked") }
        case let .recordingAcknowledged(index): update(index) { $0.state.insert(.recordingAcknowledged) }
        }
    }
}

@Suite("Policy: random sequences keep the invariants")
struct PolicyRandomTests: PolicyShorthands {
    enum Step: CustomStringConvertible {
        case join(ConnectionID, Identity)
        case command(ConnectionID, CommandAction)
        case disconnect(ConnectionID)
        case frame(ConnectionID, FrameKind)
        case tick

        var description: String {
            switch self {
            case let .join(connection, identity): "join \(connection) \(identity)"
            case let .command(connection, action): "command \(connection) \(action)"
            case let .disconnect(connection): "disconnect \(connection)"
            case let .frame(connection, kind): "frame \(connection) \(kind)"
            case .tick: "tick"
            }
        }
    }

    struct Run: PolicyShorthands {
        var rng = SplitMix64(seed: 0xC0C1_A7E5_2026)
        var policy: RoomPolicy
        var now: RelayMillis = 0
        var nextConnection: UInt64 = 1
        var requestID: UInt16 = 0
        /// Connections in the room (admitted or waiting) and their identities.
        var present: [ConnectionID: Identity] = [:]
        var mirrors: [ConnectionID: PolicyClientMirror] = [:]
        var highestIndex: UInt16 = 1
        var rooms = 1
        var stats: [String: Int] = [:]
        let identities: [Identity] = (1...12).map { PolicyFixtures.identity(UInt8($0)) }

        init() {
            policy = RoomPolicy(
                roomID: PolicyFixtures.roomID, owner: PolicyFixtures.owner, ownerConnection: ConnectionID(0),
                settings: PolicyFixtures.settings(), now: 0)
            newRoom()
        }

        mutating func randomSettings() -> RoomSettings {
            RoomSettings(
                waitingRoom: Int.random(in: 0..<4, using: &rng) != 0, muteOnEntry: Bool.random(using: &rng),
                selfUnmuteAllowed: Bool.random(using: &rng), hostsOnlySharing: Bool.random(using: &rng),
                locked: Int.random(in: 0..<8, using: &rng) == 0,
                maxParticipants: UInt16.random(in: 2...8, using: &rng), maxWaiting: UInt16.random(in: 0...4, using: &rng),
                recordingAcknowledgementTimeoutSeconds: UInt16.random(in: 1...5, using: &rng)
            )
        }

        mutating func newRoom() {
            let owner = freshConnection()
            policy = RoomPolicy(
                roomID: PolicyFixtures.roomID, owner: identities[0], ownerConnection: owner,
                settings: randomSettings(), now: now)
            present = [owner: identities[0]]
            mirrors = [owner: PolicyClientMirror.creator(of: policy)]
            highestIndex = 1
        }

        mutating func freshConnection() -> ConnectionID {
            defer { nextConnection += 1 }
            return ConnectionID(nextConnection)
        }

        /// Indices worth targeting: members, waiters, and a few that are not in the room.
        mutating func randomTarget() -> ParticipantIndex {
            let known = policy.roster.map(\.index) + policy.waitingIndices
            if known.isEmpty || Int.random(in: 0..<10, using: &rng) == 0 {
                return ParticipantIndex(UInt16.random(in: 1...highestIndex &+ 2, using: &rng))
            }
            return known.randomElement(using: &rng)!
        }

        mutating func randomSettingChange() -> SettingChange {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: .waitingRoom(Bool.random(using: &rng))
            case 1: .muteOnEntry(Bool.random(using: &rng))
            case 2: .selfUnmuteAllowed(Bool.random(using: &rng))
            case 3: .hostsOnlySharing(Bool.random(using: &rng))
            case 4: .maxParticipants(UInt16.random(in: 1...8, using: &rng))
            case 5: .maxWaiting(UInt16.random(in: 0...4, using: &rng))
            default: .recordingAcknowledgementTimeout(seconds: UInt16.random(in: 1...5, using: &rng))
            }
        }

        mutating func randomAction() -> CommandAction {
            let target = randomTarget()
            return switch Int.random(in: 0..<100, using: &rng) {
            case 0..<10: .admit(target)
            case 10..<13: .deny(target)
            case 13..<16: .lock
            case 16..<20: .unlock
            case 20..<25: .mute(target)
            case 25..<27: .muteAll
            case 27..<34: .unmuteSelf
            case 34..<38: .askUnmute(target)
            case 38..<42: .raiseHand
            case 42..<45: .lowerHand(target)
            case 45..<49: .remove(target)
            case 49..<54: .promoteCohost(target)
            case 54..<57: .demoteCohost(target)
            case 57..<60: .transferHost(target)
            case 60..<64: .grantShare(target)
            case 64..<67: .revokeShare(target)
            case 67..<71: .setRecording(on: Bool.random(using: &rng))
            case 71..<76: .acknowledgeRecording
            case 76..<84: .setSetting(randomSettingChange())
            case 84: .endMeeting
            case 85..<88: .leave
            default: .muteSelf
            }
        }

        mutating func randomPresent(admittedOnly: Bool) -> ConnectionID? {
            let pool = admittedOnly ? policy.admittedConnections : present.keys.sorted()
            return pool.randomElement(using: &rng)
        }

        mutating func randomStep() -> Step {
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<22:
                let identity =
                    Int.random(in: 0..<25, using: &rng) == 0
                    ? identities[0] : identities[Int.random(in: 1..<identities.count, using: &rng)]
                return .join(freshConnection(), identity)
            case 22..<64:
                let roll = Int.random(in: 0..<20, using: &rng)
                let sender: ConnectionID
                if roll == 0 {
                    sender = ConnectionID(UInt64.random(in: 0..<nextConnection, using: &rng))  // maybe gone
                } else if roll < 3, let waiting = randomPresent(admittedOnly: false) {
                    sender = waiting
                } else {
                    sender = randomPresent(admittedOnly: true) ?? ConnectionID(0)
                }
                return .command(sender, randomAction())
            case 64..<72:
                guard var connection = randomPresent(admittedOnly: false) else { return .tick }
                // Mostly spare the host, so that rooms live long enough to grow.
                if connection == policy.hostConnection(), Int.random(in: 0..<4, using: &rng) != 0 {
                    connection = randomPresent(admittedOnly: false)!
                }
                return .disconnect(connection)
            case 72..<92:
                guard let connection = randomPresent(admittedOnly: Int.random(in: 0..<8, using: &rng) != 0) else { return .tick }
                return .frame(connection, FrameKind.allCases.randomElement(using: &rng)!)
            default:
                return .tick
            }
        }

        // MARK: Running a step

        mutating func perform(_ step: Step) -> (actions: [RoomAction], issues: [String]) {
            var issues: [String] = []
            let reasons: [LeaveReason] = [.disconnected, .timedOut, .tooSlow]
            switch step {
            case let .join(connection, identity):
                let knock: [UInt8] = Int.random(in: 0..<15, using: &rng) == 0 ? [] : [UInt8.random(in: 0...255, using: &rng)]
                mirrors[connection] = PolicyClientMirror()
                present[connection] = identity
                return (policy.join(connection: connection, identity: identity, knock: knock, now: now), issues)
            case let .command(connection, action):
                requestID &+= 1
                return (policy.command(CommandMessage(requestID: requestID, action: action), from: connection, now: now), issues)
            case let .disconnect(connection):
                return (policy.disconnected(connection, reason: reasons.randomElement(using: &rng)!, now: now), issues)
            case .tick:
                return (policy.tick(now: now), issues)
            case let .frame(connection, kind):
                let ownIndex = policy.index(of: connection) ?? I(1)
                let sender = Int.random(in: 0..<30, using: &rng) == 0 ? ParticipantIndex(ownIndex.rawValue % 0xFFFE + 1) : ownIndex
                var recipient = ParticipantIndex.everyone
                if kind == .keys || (kind.addressing == .broadcastOrAddressed && Bool.random(using: &rng)) {
                    recipient = randomTarget()
                    if recipient == sender { recipient = ParticipantIndex(sender.rawValue % 0xFFFE + 1) }
                }
                let header = PolicyFixtures.header(kind, from: sender, to: recipient)
                let wasMember = policy.isMember(connection)
                let member = policy.roster.first { $0.index == ownIndex }
                let route = policy.routeFrame(header, from: connection)
                let label =
                    switch route {
                    case .broadcast: "broadcast"
                    case .unicast: "unicast"
                    case let .drop(reason): "drop \(reason.rawValue)"
                    case let .dropAndNotify(reason, _): "notify \(reason.rawValue)"
                    case .reject: "reject"
                    }
                stats["route " + label, default: 0] += 1
                switch route {
                case .broadcast:
                    if !wasMember || sender != ownIndex { issues.append("broadcast from a non-member or wrong sender") }
                    if kind == .audio, member?.state.contains(.muted) == true { issues.append("muted audio forwarded") }
                    if kind == .keys { issues.append("keys broadcast") }
                    if kind == .screen, policy.settings.hostsOnlySharing, member?.role == .participant,
                        member?.state.contains(.presenter) == false
                    {
                        issues.append("non-presenter screen forwarded")
                    }
                case let .unicast(target):
                    if !policy.isMember(target) { issues.append("unicast to a non-member \(target)") }
                    if target == connection { issues.append("unicast to the sender") }
                    if policy.index(of: target) != recipient { issues.append("unicast to the wrong connection") }
                    if kind == .keys, member?.role != .host { issues.append("keys from a non-host forwarded") }
                case .drop, .dropAndNotify:
                    if !wasMember { issues.append("frame from a non-member only dropped") }
                case let .reject(error):
                    if wasMember, sender == ownIndex { issues.append("valid sender rejected: \(error)") }
                    if wasMember, sender != ownIndex, error.code != .malformed { issues.append("wrong sender not malformed") }
                    if !wasMember, error.code != .unexpectedMessage { issues.append("non-member not unexpected_message") }
                    // The caller closes it and reports the disconnection.
                    return (policy.disconnected(connection, reason: .disconnected, now: now), issues)
                }
                return ([], issues)
            }
        }

        /// Checks a step's actions against what was present before and after it.
        mutating func check(
            step: Step, actions: [RoomAction], beforeAdmitted: Set<ConnectionID>,
            beforeWaiting: Set<ConnectionID>
        ) -> [String] {
            var issues: [String] = []
            let afterAdmitted = Set(policy.admittedConnections)
            var admittedInStep: Set<ConnectionID> = []
            var leaver: ConnectionID?
            if case let .command(connection, .leave) = step { leaver = connection }
            var joiner: ConnectionID?
            if case let .join(connection, _) = step { joiner = connection }

            for (position, action) in actions.enumerated() {
                switch action {
                case let .send(target, message):
                    if case .waiting = message {
                        if !policy.isWaiting(target) || target != joiner { issues.append("WAITING to \(target), not a new waiter") }
                    } else if beforeWaiting.contains(target) || (target == joiner && !admittedInStep.contains(target)) {
                        if case .admitted = message, !admittedInStep.contains(target) {
                            admittedInStep.insert(target)
                        } else if !admittedInStep.contains(target) {
                            let leaveOK: Bool = if case .commandOK = message { target == leaver } else { false }
                            if !leaveOK { issues.append("\(message.type) sent to waiting \(target)") }
                        }
                    } else if !beforeAdmitted.contains(target) && !afterAdmitted.contains(target) {
                        issues.append("\(message.type) sent to \(target), never admitted")
                    }
                    switch message {
                    case let .event(event): stats["event \(event.event.kind)", default: 0] += 1
                    case let .error(error): stats["error \(error.code.name)", default: 0] += 1
                    default: stats["message \(message.type)", default: 0] += 1
                    }
                    mirrors[target, default: PolicyClientMirror()].receive(message)
                case let .close(target, error):
                    stats["close \(error.code.name)", default: 0] += 1
                    if !error.isFatal { issues.append("non-fatal close") }
                    if policy.isMember(target) || policy.isWaiting(target) { issues.append("closed \(target) still present") }
                    mirrors[target] = nil
                    present[target] = nil
                case let .release(target):
                    if target != leaver { issues.append("release of \(target) without its leave") }
                    if policy.isMember(target) || policy.isWaiting(target) { issues.append("released \(target) still present") }
                    mirrors[target] = nil
                    present[target] = nil
                case .roomClosed:
                    if position != actions.count - 1 { issues.append("roomClosed not last") }
                    if !policy.isClosed { issues.append("roomClosed but policy open") }
                }
            }
            // Forget connections that are no longer present (disconnected, refused joins).
            for connection in present.keys where !policy.isMember(connection) && !policy.isWaiting(connection) {
                present[connection] = nil
                mirrors[connection] = nil
            }
            if policy.isClosed {
                if !actions.closesRoom { issues.append("closed without roomClosed") }
                return issues
            }
            issues += checkState()
            return issues
        }

        /// Invariants of the room and of every client's view of it.
        mutating func checkState() -> [String] {
            var issues: [String] = []
            let roster = policy.roster
            let hosts = roster.filter { $0.role == .host }
            if roster.isEmpty { issues.append("open room without members") }
            if hosts.count != 1 { issues.append("\(hosts.count) hosts") }
            if let host = policy.hostConnection(), policy.index(of: host) != hosts.first?.index {
                issues.append("hostConnection disagrees with the roster")
            }
            let admitted = policy.admittedConnections
            if Set(admitted).count != admitted.count { issues.append("duplicate admitted connection") }
            if admitted.count != policy.admittedCount || admitted.count != roster.count { issues.append("admitted counts disagree") }
            if admitted.contains(where: { !policy.isMember($0) || policy.isWaiting($0) }) { issues.append("admittedConnections wrong") }
            let members = present.keys.filter { policy.isMember($0) }
            if Set(members) != Set(admitted) { issues.append("members \(members.sorted()) != admittedConnections \(admitted)") }
            let indices = roster.map(\.index) + policy.waitingIndices
            if Set(indices).count != indices.count { issues.append("duplicate indices \(indices)") }
            if policy.waitingIndices.count != policy.waitingCount { issues.append("waiting count") }
            if roster.count > Int(MessageLimits.maximumParticipants) { issues.append("over 900 members") }
            for index in indices where index.rawValue > highestIndex {
                if index.rawValue != highestIndex + 1 { issues.append("index \(index) skipped after \(highestIndex)") }
                highestIndex = index.rawValue
            }
            for connection in present.keys where policy.isWaiting(connection) {
                if policy.isBanned(present[connection]!) { issues.append("a banned identity waits") }
            }
            // Every client's view matches the room.
            for connection in present.keys.sorted() {
                guard let mirror = mirrors[connection] else { issues.append("no mirror for \(connection)"); continue }
                issues += mirror.problems.map { "\(connection): \($0)" }
                mirrors[connection]!.problems = []
                if policy.isWaiting(connection) {
                    if mirror.isAdmitted || mirror.waitingIndex != policy.index(of: connection) { issues.append("\(connection) waiting view") }
                    continue
                }
                if mirror.index != policy.index(of: connection) { issues.append("\(connection) has the wrong index") }
                if mirror.roster.values.sorted(by: { $0.index < $1.index }) != roster {
                    issues.append("\(connection) roster view differs:\n  \(mirror.roster.values.sorted { $0.index < $1.index })\n  \(roster)")
                }
                if mirror.settings != policy.settings { issues.append("\(connection) settings view differs") }
                if mirror.recording != policy.isRecording { issues.append("\(connection) recording view differs") }
                if let role = policy.role(of: connection), role != .participant,
                    mirror.knownWaiting != Set(policy.waitingIndices)
                {
                    issues.append("\(connection) (\(role)) waiting view \(mirror.knownWaiting.sorted()) != \(policy.waitingIndices)")
                }
            }
            return issues
        }
    }

    @Test func randomSequencesKeepTheInvariants() {
        var run = Run()
        var totalIssues = 0
        var steps: [String: Int] = [:]
        for number in 0..<5_000 {
            run.now += RelayMillis.random(in: 0...1_500, using: &run.rng)
            let step = run.randomStep()
            let beforeAdmitted = Set(run.policy.admittedConnections)
            let beforeWaiting = Set(run.present.keys.filter { run.policy.isWaiting($0) })
            var (actions, issues) = run.perform(step)
            issues += run.check(step: step, actions: actions, beforeAdmitted: beforeAdmitted, beforeWaiting: beforeWaiting)
            steps[String(describing: step).prefix(while: { $0 != " " }).description, default: 0] += 1
            if actions.contains(where: { if case .send(_, .admitted) = $0 { true } else { false } }) { steps["admitted", default: 0] += 1 }
            if !actions.errors(to: actions.first.flatMap { if case let .send(c, _) = $0 { c } else { nil } } ?? ConnectionID(0)).isEmpty {
                steps["refused", default: 0] += 1
            }
            for issue in issues {
                Issue.record("step \(number) (\(step)): \(issue)")
            }
            totalIssues += issues.count
            if totalIssues > 20 { break }
            if run.policy.isClosed {
                run.rooms += 1
                run.newRoom()
                actions = []
            }
        }
        // The run must have exercised the interesting paths, or it proves little.
        #expect(run.rooms >= 3)
        #expect(steps["admitted", default: 0] >= 200)
        #expect(steps["refused", default: 0] >= 100)
        for kind in EventKind.allCases {
            #expect(run.stats["event \(kind)", default: 0] > 0, "no \(kind) event in the run")
        }
        for code: ErrorCode in [.notAllowed, .unknownParticipant, .invalidCommand, .roomFull] {
            #expect(run.stats["error \(code.name)", default: 0] > 0, "no \(code.name) answer in the run")
        }
        for code: ErrorCode in [
            .banned, .roomLocked, .roomFull, .waitingRoomFull, .denied, .removed, .ended,
            .unexpectedMessage, .malformed,
        ] {
            #expect(run.stats["close \(code.name)", default: 0] > 0, "no \(code.name) close in the run")
        }
        for route in [
            "broadcast", "unicast", "drop muted", "drop notPresenter", "notify notPresenter", "notify notLeader",
            "drop unknownRecipient", "reject",
        ] {
            #expect(run.stats["route " + route, default: 0] > 0, "no \(route) route in the run")
        }
    }
}
