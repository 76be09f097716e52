"""Class weights on an imbalanced subset of MNIST, and a regressor on scikit-learn's diabetes data.

python examples/weights_and_regression.py   (needs scikit-learn: pip install 'xpnet[sklearn]')
"""

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xpnet
from xpnet.files import idx

# MNIST with 400 images of each digit 0-4 and 12 of each digit 5-9: the rare digits are
# mostly predicted as common ones, unless each class weighs the same in the loss
mnist = idx.load_mnist()
labels = mnist.train.labels
rows = np.concatenate([np.flatnonzero(labels == d)[: 400 if d < 5 else 12] for d in range(10)])
X, y = mnist.train.images[rows].reshape(len(rows), -1) / 255.0, labels[rows]
test_X, test_y = mnist.test.images.reshape(10000, -1) / 255.0, mnist.test.labels
for class_weight in (None, "balanced"):
    clf = xpnet.MLPClassifier(hidden=(64,), epochs=8, lr=0.1, class_weight=class_weight).fit(X, y)
    score = balanced_accuracy_score(test_y, clf.predict(test_X))
    print(f"class_weight={class_weight!s:9} balanced test accuracy {score:.3f}")

# a regressor: real-valued targets, the squared error, R² as its score
X, y = load_diabetes(return_X_y=True)
reg = make_pipeline(StandardScaler(), xpnet.MLPRegressor(hidden=(32,), lr=0.01))
print(f"diabetes, 5-fold R²: {cross_val_score(reg, X, y, cv=5).mean():.3f}")
