module tim-relay/bench/openloop

go 1.22
