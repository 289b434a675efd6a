set terminal pngcairo size 900,560
set output 'bench/results/propagation.png'
set title 'one Service written to etcd -> in every node''s NAT map (10000 services)'
set xlabel 'etcd write sent -> in every node (ms)'
set ylabel 'fraction of changes'
set key bottom right
set grid
set datafile separator tab
plot 'bench/results/propagation.tsv' using (($1==3)?$3:1/0):(1.0/100) smooth cumulative with lines lw 2 title '3 nodes', 'bench/results/propagation.tsv' using (($1==5)?$3:1/0):(1.0/100) smooth cumulative with lines lw 2 title '5 nodes', 'bench/results/propagation.tsv' using (($1==10)?$3:1/0):(1.0/100) smooth cumulative with lines lw 2 title '10 nodes'
