#!/usr/bin/env bash
# Regenerate docs/benchmarks.md: run the benchmark scripts of every stage, then write the page from their JSON.
#   bash scripts/benchmarks.sh                    all stages (about 5 hours on 2 cores, 1.5 of them the NNH NVE, plus
#                                                 dft_cost, nac_vectors and back_reaction: hours each, resumable;
#                                                 datasets first if missing)
#   bash scripts/benchmarks.sh overlap report     some stages: overlap hamiltonian hamiltonian_gaas hamiltonian_pbe hamiltonian_hse06 scc couplings functionals forcefield forcefield_pbe defects nnh_lammps nnh_nve md hop hop_dev dft_cost basis_range hybrid_range large_cells size_series couplings_pbe couplings_hse06 nac_vectors back_reaction demo demo_hse06 report
#                                                 (and forcefield_nnh: only the NNH row, not in the default list)
# Results: docs/bench/*.json (committed, so a partial rerun keeps the other stages' figures); work folders
# (datasets, demo run, trajectories) under runs/; page: docs/benchmarks.md, written from docs/bench/ only.
# N2AMD_BENCH_NOTE="..." is stored with each figure (e.g. what else was running on the machine).
# VALIDATE_ARGS="--model-ranks 2" passes options to scripts/validate_couplings.py (couplings stage).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin/python
n2amd=.venv/bin/n2amd
out=docs/bench
work=runs/bench
cfg=n2amd_driver/assets/configs
models=n2amd_driver/assets/models
mkdir -p "$out" "$work"
stages=("$@")
explicit=$#
[ ${#stages[@]} -gt 0 ] || stages=(overlap hamiltonian hamiltonian_gaas hamiltonian_pbe hamiltonian_hse06 scc couplings functionals forcefield forcefield_pbe defects nnh_lammps nnh_nve md hop hop_dev dft_cost basis_range hybrid_range large_cells size_series couplings_pbe couplings_hse06 nac_vectors back_reaction demo demo_hse06 report)
data() {  # the GFN1-xTB Si64 datasets the models were trained and tested on (~15 min each)
    [ -f runs/si64_train.h5 ] || $n2amd data generate $cfg/data_si64_train.yaml -o runs/si64_train.h5 --workers 2
    [ -f runs/si64_test.h5 ] || $n2amd data generate $cfg/data_si64_test.yaml -o runs/si64_test.h5 --workers 2
}
first_mlff() {  # the first-round MLFF (Tersoff frames only) and the frames of its MD (train_ff_si64.yaml says why)
    data
    [ -f runs/ff_si64/model.pt ] || OMP_NUM_THREADS=2 $n2amd train forcefield $cfg/train_ff_si64.yaml \
        --set data=runs/si64_train.h5 --set output=runs/ff_si64
    [ -f runs/si64_mlff.h5 ] || $n2amd data generate $cfg/data_si64_mlff.yaml -o runs/si64_mlff.h5 --workers 2 \
        --set "sampling.potential.pair_coeff=* * runs/ff_si64/model.pt Si"
}
data_gaas() {  # the GaAs64 sets of the GaAs Hamiltonian model
    [ -f runs/gaas64_train.h5 ] || $n2amd data generate $cfg/data_gaas64_train.yaml -o runs/gaas64_train.h5 --workers 2
    [ -f runs/gaas64_test.h5 ] || $n2amd data generate $cfg/data_gaas64_test.yaml -o runs/gaas64_test.h5 --workers 2
}
for s in "${stages[@]}"; do
    echo "[benchmarks] $s ($(date -u +%H:%M) UTC)"
    case "$s" in
        overlap) OMP_NUM_THREADS=1 $py scripts/bench_overlap.py --out $out/overlap.json ;;
        hamiltonian) data; OMP_NUM_THREADS=2 $py scripts/bench_hamiltonian.py $models/si_hamiltonian.pt \
                         runs/si64_test.h5 --speed-sizes 2 3 --out $out/hamiltonian.json ;;
        hamiltonian_pbe) [ -f runs/si8_pbe_test.h5 ] || OMP_NUM_THREADS=2 $n2amd data generate \
                             $cfg/data_si8_pbe_test.yaml -o runs/si8_pbe_test.h5  # ~10 min
                         OMP_NUM_THREADS=2 $py scripts/bench_hamiltonian.py $models/si_pbe_hamiltonian.pt \
                             runs/si8_pbe_test.h5 --speed-sizes --out $out/hamiltonian_pbe.json ;;
        forcefield_pbe) # held-out: the 4 frames of the committed datasets/si64_pbe.h5 that the training split leaves out;
                        # one pyscf PBE single point with forces on Si64 is timed in the same run (~7 min)
                        $py scripts/bench_forcefield.py --model $models/si_pbe_mlff.pt --test datasets/si64_pbe.h5 \
                            --held-out-of $cfg/train_ff_si64_pbe.yaml --out $out/forcefield_pbe.json ;;
        hamiltonian_hse06) # held-out labels committed (datasets/si8_hse06_test.h5, 8 frames, ~2 h to make); the
                           # speed row runs one pyscf HSE06 single point on 2×2×2 k-points (~15 min)
                           OMP_NUM_THREADS=2 $py scripts/bench_hamiltonian.py $models/si_hse06_hamiltonian.pt \
                               datasets/si8_hse06_test.h5 --speed-sizes 2 --out $out/hamiltonian_hse06.json ;;
        functionals) $py scripts/bench_functionals.py --out runs/functionals_pbe --json $out/functionals.json
                     # the MD level: the GFN1-xTB and ML-PBE Hamiltonians on a GFN1-xTB-MLFF trajectory
                     $py scripts/bench_functionals.py --mlff si_mlff.pt --levels GFN1-xTB ML-PBE \
                         --out runs/functionals --json $out/functionals_gfn1_md.json ;;
        couplings_pbe) # the pyscf PBE reference (101 Si216 snapshots, ~4 h) is kept in docs/bench/validate_couplings_pbe/
                       OMP_NUM_THREADS=1 $py scripts/validate_couplings.py $models/si_pbe_hamiltonian.pt --steps 100 \
                           --model-ranks 2 --reference-ranks 1 --out $out/validate_couplings_pbe
                       cp $out/validate_couplings_pbe/validate_couplings.json $out/validate_couplings_pbe.json ;;
        couplings_hse06) # the pyscf HSE06 reference (11 Si64 snapshots, ~15 min each) is kept in
                         # docs/bench/validate_couplings_hse06/ with the trajectory it runs on
                         OMP_NUM_THREADS=1 $py scripts/validate_couplings.py $models/si_hse06_hamiltonian.pt \
                             --trajectory $out/validate_couplings_hse06/si8x222_300K.extxyz --model-ranks 2 \
                             --reference-ranks 1 --out $out/validate_couplings_hse06
                         cp $out/validate_couplings_hse06/validate_couplings.json $out/validate_couplings_hse06.json ;;
        large_cells) OMP_NUM_THREADS=2 $py scripts/bench_large_cells.py --stage cutoff --json $out/large_cells.json  # ~3 min
                     # per size in its own process, kept in the JSON (resumes); Si4096 took 36 min beside one other job (2026-12-07, wall_s in large_cells.json)
                     OMP_NUM_THREADS=1 $py scripts/bench_large_cells.py --stage scaling --sizes 4 5 6 8 --cutoff 10 \
                         --json $out/large_cells.json ;;
        size_series) # trajectories and compact couplings checkpoints are kept in docs/bench/size_series/ (hours per size from 1000 atoms; resumable)
                     OMP_NUM_THREADS=1 $py scripts/bench_size_series.py --json $out/size_series.json
                     OMP_NUM_THREADS=1 $py scripts/bench_size_series.py --stage replicas --sizes 2 3 --replicas 3 --json $out/size_series.json
                     OMP_NUM_THREADS=1 $py scripts/bench_size_series.py --stage replicas --sizes 4 --replicas 1 --json $out/size_series.json
                     OMP_NUM_THREADS=1 $py scripts/bench_size_series.py --stage tblite216 --json $out/size_series.json
                     OMP_NUM_THREADS=1 $py scripts/bench_size_series.py --stage localisation --sizes 2 3 4 5 6 --json $out/size_series.json
                     $py scripts/bench_size_series.py --stage folding --sizes 2 3 4 5 6 8 --json $out/size_series.json ;;
        nac_vectors) # per-cell results are kept in docs/bench/nac_vectors/ (~2 min per cell and model)
                     OMP_NUM_THREADS=1 $py scripts/bench_nac_vectors.py --model si_hamiltonian.pt --cells 50 --atoms 2 \
                         --work $out/nac_vectors/si_hamiltonian --out $out/nac_vectors.json
                     OMP_NUM_THREADS=1 $py scripts/bench_nac_vectors.py --model gaas_hamiltonian.pt --cells 50 --atoms 2 \
                         --work $out/nac_vectors/gaas_hamiltonian --update $out/nac_vectors.json ;;
        back_reaction) # ground-state trajectory, CPA couplings and populations, hop-md checkpoints: kept in docs/bench/back_reaction/
                       OMP_NUM_THREADS=1 $py scripts/bench_back_reaction.py --work $out/back_reaction \
                           --json $out/back_reaction.json ;;
        hamiltonian_gaas) data_gaas; OMP_NUM_THREADS=2 $py scripts/bench_hamiltonian.py $models/gaas_hamiltonian.pt \
                              runs/gaas64_test.h5 --speed-sizes 2 --out $out/hamiltonian_gaas.json ;;
        scc) data; OMP_NUM_THREADS=2 $py scripts/analyse_scc_shift.py runs/si64_train.h5 runs/si64_test.h5 \
                 --model $models/si_hamiltonian.pt --out $out/scc_shift.json ;;
        couplings) # the trajectory and the tblite reference along it (~1 h) are kept in docs/bench/validate_couplings/
                   # so that a rerun only redoes the model jobs; delete that folder to recompute them
                   v=$work/validate_couplings; keep=$out/validate_couplings; mkdir -p $v $keep
                   for f in si64_300K.dump reference.h5 reference.timing.json; do
                       [ -f $v/$f ] || [ ! -f $keep/$f ] || cp $keep/$f $v/$f; done
                   OMP_NUM_THREADS=1 $py scripts/validate_couplings.py $models/si_hamiltonian.pt --steps 500 \
                       --out $v ${VALIDATE_ARGS:-}
                   for f in si64_300K.dump reference.h5 reference.timing.json; do cp $v/$f $keep/$f; done
                   cp $v/validate_couplings.json $out/validate_couplings.json ;;
        forcefield) first_mlff; nnh=(); [ -f $models/si_nnh.pt ] && nnh=(--nnh-model si_nnh.pt)
                    $py -m pip install --quiet -e ".[baselines]"   # NequIP, trained below on the same data and split
                    [ -f runs/nequip_si64/best.ckpt ] || OMP_NUM_THREADS=2 $py scripts/nequip_baseline.py \
                        --data runs/si64_train.h5 runs/si64_mlff.h5 --out runs/nequip_si64
                    OMP_NUM_THREADS=2 $py scripts/bench_forcefield.py --model si_mlff.pt --sam-model si_mlff_sam.pt \
                        "${nnh[@]}" --nequip runs/nequip_si64/best.ckpt --test runs/si64_test.h5 --threads 2 \
                        --ttf-temperature 2400 --ttf-ps 1 --nnh-nve-fs 50 --out $out/forcefield.json ;;
        forcefield_nnh) # only the NNH row of forcefield.json, after a new si_nnh.pt (the full stage retrains NequIP)
                    data; OMP_NUM_THREADS=2 $py scripts/bench_forcefield.py --update $out/forcefield.json \
                        --nnh-model si_nnh.pt --test runs/si64_test.h5 --threads 2 --out $out/forcefield.json ;;
        defects) # the first-round MLFF (Tersoff frames only) against the bundled one (+ frames of its MD)
                 # seed 11: the runs whose frames were added to the data; 17: independent ones
                 first_mlff; OMP_NUM_THREADS=2 $py scripts/bench_mlff_defects.py runs/ff_si64/model.pt si_mlff.pt \
                     --seeds 11 17 --out $out/mlff_defects.json ;;
        nnh_nve) OMP_NUM_THREADS=2 $py scripts/bench_nnh_nve.py --model si_nnh.pt --ps 5 --threads 2 --reference-every 250 \
                     --out $out/nnh_nve.json ;;
        md) OMP_NUM_THREADS=1 $py scripts/bench_md_coupling.py --out $out/md_coupling.json ;;
        hop) $py scripts/bench_hop.py --out $out/hop.json ;;
        hop_dev) # needs a serial Hefei-NAMD-DEV build: HFNAMD=/path/to/hfnamd (docs/namd.md says how it was built)
                 if [ -x "${HFNAMD:-}" ]; then $py scripts/bench_hop_dev.py --dev "$HFNAMD" --out $out/hop_dev.json
                 elif [ "$explicit" -gt 0 ]; then echo "hop_dev: set HFNAMD to a Hefei-NAMD-DEV executable" >&2; exit 2
                 else echo "[benchmarks] hop_dev skipped: HFNAMD (a Hefei-NAMD-DEV executable) is not set" >&2; fi ;;
        dft_cost) OMP_NUM_THREADS=2 $py scripts/bench_dft_cost.py --out $out/dft_cost.json ;;  # resumes; hours in all
        basis_range) OMP_NUM_THREADS=2 $py scripts/analyse_basis_range.py --out $out/basis_range.json ;;  # resumes
        hybrid_range) OMP_NUM_THREADS=2 $py scripts/analyse_hybrid_range.py --out $out/hybrid_range.json ;;  # ~10 min
        demo) rm -rf $work/demo; $n2amd demo --workdir $work/demo; cp $work/demo/summary.json $out/demo.json ;;
        demo_hse06) rm -rf $work/demo_hse06; $n2amd demo --level hse06 --workdir $work/demo_hse06
                    cp $work/demo_hse06/summary.json $out/demo_hse06.json ;;
        nnh_lammps) OMP_NUM_THREADS=2 $py scripts/bench_nnh_lammps.py --nvt-steps 10 --nve-steps 50 --workdir $work/nnh_lammps --out $out/nnh_lammps.json ;;
        report) $py scripts/benchmarks_report.py --dir $out --out docs/benchmarks.md ;;
        *) echo "unknown stage '$s'" >&2; exit 2 ;;
    esac
done
