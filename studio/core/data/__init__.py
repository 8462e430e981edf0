"""Datasets: loading image folders and .npz files, preprocessing, synthetic inputs."""
