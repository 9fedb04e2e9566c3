"""Numerical ops: click rendering and dense CRF, each with a numpy reference and native
(C++ CPU / CUDA) implementations behind one dispatching function."""
