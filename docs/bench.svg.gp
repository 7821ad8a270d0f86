set terminal svg size 1000,760 dynamic font 'sans,11'
set output 'docs/bench.svg'
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set grid ytics
set key outside right top
set multiplot layout 2,1 title 'msgframe-bench: 3.00 s per run, 1 server thread(s), median of 5 rounds'
set ylabel 'calls/s (log)'
plot 'docs/bench.svg.dat' using 2:xtic(1) title 'msgframe', '' using 3 title 'raw', '' using 4 title 'grpc'
set ylabel 'p50 latency, µs (log)'
plot 'docs/bench.svg.dat' using 5:xtic(1) title 'msgframe', '' using 6 title 'raw', '' using 7 title 'grpc'
unset multiplot
