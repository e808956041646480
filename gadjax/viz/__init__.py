"""Lightweight PNG figures with Pillow only (no matplotlib).

Sample grids, ROC curves, score histograms, labelled input / reconstruction /
anomaly-map rows, grouped bar charts and value tables, good enough for training
logs and reports. Every ``save_*`` writes atomically (temporary file in the same
directory, then ``os.replace``), so a crashed or concurrent run never leaves a
truncated PNG.

Modules: ``_draw`` (shared primitives), ``images`` (grids, triplets), ``charts``
(ROC, histogram, bars, value table); everything public is re-exported here.
"""
from gadjax.viz._draw import PAD, PALETTE, heat_colormap
from gadjax.viz.charts import save_bars, save_histogram, save_roc, save_value_table
from gadjax.viz.images import grid_shape, make_grid, save_grid, save_triplets, tile_scale, triplet_layout

__all__ = ["grid_shape", "make_grid", "save_grid", "heat_colormap", "save_roc", "save_histogram",
           "save_triplets", "save_value_table", "save_bars", "tile_scale", "triplet_layout", "PAD", "PALETTE"]
