"""Reports, figures and servers for looking at results.

fig3_tsne       Fig. 3: t-SNE of CLIP-augmented source features against source and target features,
                and how much of each target they cover (nearest-neighbour share, MMD^2)
fig4_retrieval  Fig. 4: retrieval with mixed image+text queries, and precision@k of the prompt's style
curves          PCK curves and per-epoch training losses of tracked training runs
tables          `repro report`: the table studies as paper-style Markdown/HTML/LaTeX tables and an index
figures         saving figures and logging them as runs of the MLflow experiment "repro-figures"
servers         the MLflow UI and optuna-dashboard on the suite's stores, bound to 127.0.0.1
"""
