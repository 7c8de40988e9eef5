"""Windows' embeddings -> one speaker label per window (agglomerative clustering, cosine distance).

Auto count: the labels of 2..8 clusters are scored by silhouette; a best score below `MIN_SILHOUETTE` means
one speaker. Every candidate goes through the same guard: a cluster of fewer than `MIN_CLUSTER_WINDOWS`
windows (a cough, a laugh, a window across two voices) is not a speaker, and its windows join the nearest
large cluster. Without the guard a forced count of 2 on two speakers gave one outlier window a cluster
of its own and merged both voices into the other (37.7% DER; tests/test_speakers_gates.py keeps that case).
Finally clusters whose centres are nearly the same voice are merged (auto count only).
"""

from __future__ import annotations

import numpy as np

from ..options import SpeakerOptions

MIN_CLUSTER_WINDOWS = 3  # smaller clusters are reassigned to the nearest large one
MIN_SILHOUETTE = 0.12  # a best silhouette below this: one speaker
MERGE_SIMILARITY = 0.8  # centres at least this cosine-similar are one voice


def _centres(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    centres = {}
    for label in np.unique(labels):
        centre = vectors[labels == label].mean(axis=0)
        centres[int(label)] = centre / max(float(np.linalg.norm(centre)), 1e-9)
    return centres


def _guard(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Move the windows of clusters under `MIN_CLUSTER_WINDOWS` to the most similar large cluster."""
    sizes = {int(label): int(np.sum(labels == label)) for label in np.unique(labels)}
    large = [label for label, size in sizes.items() if size >= MIN_CLUSTER_WINDOWS]
    if not large or len(large) == len(sizes):
        return labels
    centres = _centres(vectors, labels)
    matrix = np.stack([centres[label] for label in large])
    guarded = labels.copy()
    for index in np.flatnonzero(~np.isin(labels, large)):
        guarded[index] = large[int(np.argmax(matrix @ vectors[index]))]
    return guarded


def _merge_close(vectors: np.ndarray, labels: np.ndarray, keep_at_least: int) -> np.ndarray:
    """Merge the two most similar clusters while their centres are nearly one voice."""
    labels = labels.copy()
    while len(np.unique(labels)) > keep_at_least:
        centres = _centres(vectors, labels)
        keys = list(centres)
        matrix = np.stack([centres[k] for k in keys])
        similarity = matrix @ matrix.T - 2 * np.eye(len(keys))
        a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        if similarity[a, b] < MERGE_SIMILARITY:
            break
        labels[labels == keys[b]] = keys[a]
    return labels


def _cut(tree: np.ndarray, vectors: np.ndarray, clusters: int) -> np.ndarray:
    """The guarded labels of the tree cut into `clusters` clusters."""
    from scipy.cluster.hierarchy import fcluster

    return _guard(vectors, fcluster(tree, t=clusters, criterion="maxclust"))


def _exact(tree: np.ndarray, vectors: np.ndarray, count: int) -> np.ndarray:
    """Labels with `count` large clusters: cut finer until that many survive the guard."""
    best = _cut(tree, vectors, count)
    for clusters in range(count, min(len(vectors), 4 * count) + 1):
        labels = _cut(tree, vectors, clusters)
        found = len(np.unique(labels))
        if found == count:
            return labels
        if found > count:
            break
        best = labels
    return best


def cluster_speakers(vectors: np.ndarray, options: SpeakerOptions) -> np.ndarray:
    """One label per row of unit-length `vectors`, numbered 0..k-1 in order of first appearance."""
    from scipy.cluster.hierarchy import linkage  # loaded only when speakers are on
    from sklearn.metrics import silhouette_score

    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    if options.count == 1 or options.max_speakers == 1 or len(vectors) < 2 * MIN_CLUSTER_WINDOWS:
        return np.zeros(len(vectors), np.int64)
    tree = linkage(vectors, method="average", metric="cosine")
    if options.count is not None:
        labels = _exact(tree, vectors, options.count)
    else:
        low = max(2, options.min_speakers)
        scored = []
        for count in range(low, min(options.max_speakers, len(vectors) // MIN_CLUSTER_WINDOWS) + 1):
            labels = _exact(tree, vectors, count)
            if len(np.unique(labels)) == count:
                scored.append((float(silhouette_score(vectors, labels, metric="cosine")), count, labels))
        if not scored:
            return np.zeros(len(vectors), np.int64)
        score, _, labels = max(scored, key=lambda item: item[0])
        if score < MIN_SILHOUETTE and options.min_speakers == 1:
            return np.zeros(len(vectors), np.int64)
        labels = _merge_close(vectors, labels, keep_at_least=options.min_speakers)
    order = {label: number for number, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], np.int64)
