# Reno/Cubic-style datapath program (the agent computes the window):
# fold ACKs and losses, report once per RTT or at once on loss or timeout.
(def (Report
    (volatile acked 0)
    (volatile sacked 0)
    (volatile loss 0)
    (volatile timeout false)
    (volatile rtt 0)
    (volatile inflight 0)))
(when true
    (:= Report.inflight Flow.packets_in_flight)
    (:= Report.rtt Flow.rtt_sample_us)
    (:= Report.acked (+ Report.acked Ack.bytes_acked))
    (:= Report.sacked (+ Report.sacked Ack.packets_misordered))
    (:= Report.loss (+ Report.loss Ack.lost_pkts_sample))
    (:= Report.timeout Flow.was_timeout)
    (fallthrough))
(when (or Report.timeout (> Report.loss 0))
    (report)
    (:= Micros 0))
(when (> Micros Flow.rtt_sample_us)
    (report)
    (:= Micros 0))
