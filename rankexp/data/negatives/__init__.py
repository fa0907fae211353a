from rankexp.data.negatives.base import NegativeSampler as NegativeSampler
from rankexp.data.negatives.bm25 import BM25Negatives as BM25Negatives
from rankexp.data.negatives.random import RandomNegatives as RandomNegatives
