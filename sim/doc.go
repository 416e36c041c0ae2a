// Package sim is a deterministic simulator of an organisation's outbound
// network traffic as Zeek logs it, with ground truth, for training and
// evaluating the beacon detector and for demos.
//
// A world of hosts (laptops that sleep at night and over weekends, desktops
// and servers that never do, a few IoT devices) produces:
//
//   - people browsing in bursts during office hours, over a heavy-tailed
//     site popularity with each page pulling CDN and third-party hosts;
//   - shared periodic background services (OS updates, antivirus,
//     telemetry, monitoring agents, mail and chat polling, cloud sync,
//     certificate checks, NTP, connectivity checks) and DNS lookups;
//   - rare periodic benign traffic on one host each (an auto-refreshing
//     dashboard, an IoT device checking in, a nightly backup, a cron job);
//   - C2 implants of several kinds (see C2Kinds), with sleeps of
//     interval*(1-U(0,jitter)).
//
// Generate streams the events in time order; WriteDir writes http.log,
// conn.log and ssl.log in Zeek's TSV format plus truth.csv, which labels
// every flow (source address and FlowKey destination). The same Config
// always produces byte-identical output. docs/simulator.md describes the
// model and its parameters.
package sim
