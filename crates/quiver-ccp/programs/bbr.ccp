# BBR-style probe_bw in the datapath: every min-RTT the pacing rate cycles through
# 1.25x (probe), 0.75x (drain) and six rounds at 1x of `bottle_rate`, which the agent
# sets from the reported delivery rate. A report goes up once per cycle and on loss.
(def (Report
    (volatile minrtt +infinity)
    (volatile rate 0)
    (volatile loss 0))
    (bottle_rate 0)
    (cycle 0))
(when true
    (:= Report.minrtt (min Report.minrtt Flow.rtt_sample_us))
    (:= Report.rate (max Report.rate Flow.rate_incoming Flow.rate_outgoing))
    (:= Report.loss (+ Report.loss Ack.lost_pkts_sample))
    (fallthrough))
(when (and (> Micros Report.minrtt) (== cycle 0))
    (:= Rate (/ (* bottle_rate 5) 4))
    (:= cycle 1)
    (:= Micros 0)
    (report))
(when (and (> Micros Report.minrtt) (== cycle 1))
    (:= Rate (/ (* bottle_rate 3) 4))
    (:= cycle 2)
    (:= Micros 0))
(when (> Micros Report.minrtt)
    (:= Rate bottle_rate)
    (:= cycle (+ cycle 1))
    (:= cycle (!if (< cycle 8) 0))
    (:= Micros 0))
