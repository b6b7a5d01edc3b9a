"""Independent reference values for test/monitor/*.test.ts, computed with scipy/numpy (scipy 1.17.1, numpy 2.4.6).

Regenerates the tests' seeded samples (mulberry32 + Box-Muller, as test/monitor/data.ts) and prints the figures
pasted into the tests. Run: python3 test/monitor/scipy_reference.py
"""
import math
import numpy as np
from scipy import stats
from scipy.spatial import distance


def mulberry32(seed):
    state = seed & 0xFFFFFFFF
    while True:
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        yield ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296


def normals(seed, n, mu=0.0, sd=1.0):
    g = mulberry32(seed)
    out = []
    for _ in range(n):
        u1 = next(g)
        u2 = next(g)
        out.append(mu + sd * math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2))
    return np.array(out)


def categorical(seed, n, cats, p):
    g = mulberry32(seed)
    out = []
    for _ in range(n):
        u = next(g)
        acc = 0.0
        k = 0
        while k < len(p) - 1:
            acc += p[k]
            if u >= acc:
                k += 1
            else:
                break
        out.append(cats[k])
    return out


def evidently_binned(ref, cur, numeric, feel_zeroes):
    """evidently.calculations.stattests.utils.get_binned_data (Evidently 0.4.x)."""
    ref = np.asarray(ref)
    cur = np.asarray(cur)
    if numeric and len(np.unique(ref)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        rp = np.histogram(ref, bins)[0] / len(ref)
        cp = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = list(dict.fromkeys(list(ref) + list(cur)))
        rp = np.array([np.sum(ref == k) / len(ref) for k in keys])
        cp = np.array([np.sum(cur == k) / len(cur) for k in keys])
    if feel_zeroes:
        for arr in (rp, cp):
            m = min(arr[arr != 0])
            np.place(arr, arr == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return rp, cp


def show(name, value):
    print(f"{name}: {value!r}")


print("first uniforms seed 1:", [next(mulberry32(1))])
a = normals(1, 200)
b = normals(2, 150, 0.3, 1.0)
show("ks(a,b)", stats.ks_2samp(a, b))
show("ks(a,a[:77])", stats.ks_2samp(a, a[:77]))
c = normals(3, 400)
d = normals(4, 400, 0.05)
show("ks(c,d) n1=n2", stats.ks_2samp(c, d))
show("wasserstein(a,b)", stats.wasserstein_distance(a, b))
show("normed wasserstein(a,b)", stats.wasserstein_distance(a, b) / max(np.std(a), 0.001))
rp, cp = evidently_binned(a, b, True, True)
show("psi(a,b)", float(np.sum((rp - cp) * np.log(rp / cp))))
show("kl(a,b)", float(stats.entropy(rp, cp)))
rp, cp = evidently_binned(a, b, True, False)
show("js(a,b)", float(distance.jensenshannon(rp, cp)))
show("hellinger(a,b)", float(np.sqrt(np.sum((np.sqrt(rp) - np.sqrt(cp)) ** 2)) / np.sqrt(2)))
show("sturges edges a+b", np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges").tolist())

cats = ["a", "b", "c", "d"]
r = categorical(5, 300, cats, [0.4, 0.3, 0.2, 0.1])
s = categorical(6, 200, cats, [0.3, 0.3, 0.25, 0.15])
keys = list(dict.fromkeys(r + s))
k = len(s) / len(r)
f_exp = [r.count(x) * k for x in keys]
f_obs = [s.count(x) for x in keys]
show("chisquare(r->s)", stats.chisquare(f_obs, f_exp))
rp, cp = evidently_binned(r, s, False, False)
show("js(r,s)", float(distance.jensenshannon(rp, cp)))
rp, cp = evidently_binned(r, s, False, True)
show("psi(r,s)", float(np.sum((rp - cp) * np.log(rp / cp))))

x = categorical(7, 250, ["no", "yes"], [0.6, 0.4])
y = categorical(8, 180, ["no", "yes"], [0.5, 0.5])
n1, n2 = len(x), len(y)
p1 = x.count("no") / n1
p2 = y.count("no") / n2
P = (p1 * n1 + p2 * n2) / (n1 + n2)
z = (p1 - p2) / np.sqrt(P * (1 - P) * (1 / n1 + 1 / n2))
show("ztest z,p", (z, 2 * (1 - stats.norm.cdf(abs(z)))))

# MMD (Alibi Detect definitions): 2-D points
ref = np.stack([normals(11, 40), normals(12, 40)], 1)
cur = np.stack([normals(13, 30, 0.5), normals(14, 30)], 1)
dref = ((ref[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
flat = np.sort(dref.flatten())
n = len(ref)
sigma = math.sqrt(0.5 * flat[n + (n * n - n) // 2 - 1])
allx = np.concatenate([ref, cur])
K = np.exp(-((allx[:, None, :] - allx[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))
np.fill_diagonal(K, 0)
m = len(cur)
mmd2 = K[:n, :n].sum() / (n * (n - 1)) + K[n:, n:].sum() / (m * (m - 1)) - 2 * K[n:, :n].mean()
show("mmd sigma, mmd2", (sigma, mmd2))

# ROC AUC with ties (sklearn.metrics.roc_auc_score == Mann-Whitney U / (n1 n2))
lab = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 0])
sc = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.2, 0.7, 0.65])
u = stats.mannwhitneyu(sc[lab == 1], sc[lab == 0]).statistic
show("auc", u / ((lab == 1).sum() * (lab == 0).sum()))

big1 = normals(21, 12000)
big2 = normals(22, 11000, 0.03)
show("ks big (asymp)", stats.ks_2samp(big1, big2))
show("ks strong shift", stats.ks_2samp(a, normals(2, 150, 1.0)))
show("ks ties", stats.ks_2samp([1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5]))
show("kstwobign.sf(1.0), (0.5), (2.0)", (stats.kstwobign.sf(1.0), stats.kstwobign.sf(0.5), stats.kstwobign.sf(2.0)))

# mSPRT normal mixture (Johari et al.): Lambda = integral of N(d; theta, V)/N(d; 0, V) dN(theta; 0, tau^2),
# computed by quadrature, not by the closed form the code uses.
from scipy import integrate, optimize

def mixture_lr(d, V, tau2, theta0=0.0):
    f = lambda th: stats.norm.pdf(d, th, math.sqrt(V)) / stats.norm.pdf(d, theta0, math.sqrt(V)) * stats.norm.pdf(th, theta0, math.sqrt(tau2))
    return integrate.quad(f, theta0 - 60 * math.sqrt(tau2), theta0 + 60 * math.sqrt(tau2), epsabs=0, epsrel=1e-12, limit=500)[0]

sa, na, sb, nb = 120, 1000, 150, 1000
pa, pb = sa / na, sb / nb
d = pb - pa
V = pa * (1 - pa) / na + pb * (1 - pb) / nb
tau2 = 0.05**2
lam = mixture_lr(d, V, tau2)
show("msprt d, V, Lambda, 1/Lambda", (d, V, lam, 1 / lam))
# Confidence-sequence bounds: theta0 where the mixture LR centred at theta0 equals 1/alpha.
lo = optimize.brentq(lambda t: mixture_lr(d, V, tau2, t) - 20, d - 0.2, d)
hi = optimize.brentq(lambda t: mixture_lr(d, V, tau2, t) - 20, d, d + 0.2)
show("msprt CS 95%", (lo, hi))
# Fixed horizon: R's power.prop.test(p1=.5, p2=.75, power=.9) documents n = 76.7 per group.
za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.9)
pbar = 0.625
show("n power.prop.test(.5,.75,.9)", ((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(0.25 + 0.1875)) / 0.25) ** 2)
za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
pbar = 0.11
show("n (.10, .12, power .8)", ((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(0.1 * 0.9 + 0.12 * 0.88)) / 0.02) ** 2)
show("ks 1000 vs 5000", stats.ks_2samp(normals(1, 1000), normals(2, 5000, 0.05)))
show("ks 10000 vs 10000", stats.ks_2samp(normals(1, 10000), normals(2, 10000, 0.02)))
