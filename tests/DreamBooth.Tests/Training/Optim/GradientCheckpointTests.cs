using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DreamBooth.Tests.Training.Optim;

[Collection(DreamBooth.Tests.Infrastructure.CustomAutogradCollection.Name)]
public class GradientCheckpointTests
{
    /// <summary>A conv + time-embedding + cross-attention block, shaped like a tiny UNet transformer block.</summary>
    private sealed class Block : nn.Module<Tensor, Tensor, Tensor, Tensor>
    {
#pragma warning disable IDE1006 // names equal checkpoint keys
        private readonly Conv2d conv;
        private readonly GroupNorm norm;
        private readonly Linear time_proj, to_q, to_k, to_v, to_out;
#pragma warning restore IDE1006

        public Block(int c, int tDim, int ctxDim) : base(nameof(Block))
        {
            conv = nn.Conv2d(c, c, 3, padding: 1);
            norm = nn.GroupNorm(2, c);
            time_proj = nn.Linear(tDim, c);
            to_q = nn.Linear(c, c, hasBias: false);
            to_k = nn.Linear(ctxDim, c, hasBias: false);
            to_v = nn.Linear(ctxDim, c, hasBias: false);
            to_out = nn.Linear(c, c);
            RegisterComponents();
            // TorchSharp can leave norm affine parameters uninitialised (occasionally NaN): set PyTorch's defaults
            using var noGrad = torch.no_grad();
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }

        public override Tensor forward(Tensor x, Tensor temb, Tensor ctx)
        {
            var h = F.silu(norm.forward(conv.forward(x)));
            h = h + time_proj.forward(F.silu(temb)).unsqueeze(-1).unsqueeze(-1);
            long b = h.shape[0], c = h.shape[1], hh = h.shape[2], ww = h.shape[3];
            var tokens = h.flatten(2).transpose(1, 2);             // [B, HW, C]
            var q = to_q.forward(tokens);
            var k = to_k.forward(ctx);
            var v = to_v.forward(ctx);
            var attn = torch.softmax(q.matmul(k.transpose(1, 2)) / Math.Sqrt(c), -1);
            var o = to_out.forward(attn.matmul(v));
            return x + o.transpose(1, 2).reshape(b, c, hh, ww);
        }
    }

    private static (Tensor X, Tensor Temb, Tensor Ctx, Parameter Pre) Inputs(ulong seed)
    {
        var g = new Generator(seed);
        var pre = new Parameter(torch.randn(new long[] { 2, 4, 6, 6 }, generator: g));
        var temb = torch.randn(new long[] { 2, 8 }, generator: g);       // no grad (frozen timestep embedding)
        var ctx = torch.randn(new long[] { 2, 5, 12 }, generator: g);    // no grad (encoder hidden states)
        return (pre, temb, ctx, pre);
    }

    [Fact]
    public void GradientsEqualPlainBackward()
    {
        using var block = new Block(4, 8, 12);
        var ps = block.parameters().ToArray();
        var (_, temb, ctx, pre) = Inputs(3);
        var target = torch.randn(new long[] { 2, 4, 6, 6 }, generator: new Generator(4));

        // Plain.
        using (torch.NewDisposeScope())
        {
            var x = pre * 2; // a non-leaf input that requires grad
            var y = block.forward(x, temb, ctx);
            var z = block.forward(y, temb, ctx); // the block used twice: grads accumulate over both uses
            F.mse_loss(z, target).backward();
        }
        var plainParamGrads = ps.Select(p => p.grad!.clone()).ToArray();
        var plainInputGrad = pre.grad!.clone();
        foreach (var p in ps) p.grad = null;
        pre.grad = null;

        // Checkpointed.
        using (torch.NewDisposeScope())
        {
            var x = pre * 2;
            var y = GradientCheckpoint.Run(a => block.forward(a[0], a[1], a[2]), ps, x, temb, ctx);
            Assert.True(y.requires_grad);
            var z = GradientCheckpoint.Run(a => block.forward(a[0], a[1], a[2]), ps, y, temb, ctx);
            F.mse_loss(z, target).backward();
        }
        for (int i = 0; i < ps.Length; i++)
            Assert.True(ps[i].grad!.Same(plainParamGrads[i]), $"parameter {i} grad differs, max |Δ| = {(ps[i].grad! - plainParamGrads[i]).abs().max().item<float>()}");
        Assert.True(pre.grad!.Same(plainInputGrad), "input grad differs");
        Assert.Null(temb.grad);
        Assert.Null(ctx.grad);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SeveralOutputsGiveTheSameGradients(bool useBothOutputs)
    {
        using var block = new Block(4, 8, 12);
        var ps = block.parameters().ToArray();
        var (_, temb, ctx, pre) = Inputs(13);
        Tensor[] Fn(Tensor[] a)
        {
            var y = block.forward(a[0], a[1], a[2]);
            return new[] { y, (y * a[0]).mean(new long[] { 2, 3 }) }; // like (hidden, residual) of a down block
        }
        Tensor Loss(Tensor[] o) => useBothOutputs ? o[0].square().mean() + o[1].sum() : o[0].square().mean();
        using (torch.NewDisposeScope()) Loss(Fn(new[] { pre * 1.0, temb, ctx })).backward();
        var plain = ps.Select(p => p.grad!.clone()).Append(pre.grad!.clone()).ToArray();
        foreach (var p in ps) p.grad = null;
        pre.grad = null;
        using (torch.NewDisposeScope())
        {
            var outs = GradientCheckpoint.RunMany(Fn, ps, pre * 1.0, temb, ctx);
            Assert.Equal(2, outs.Length);
            Loss(outs).backward();
        }
        var ckpt = ps.Select(p => p.grad!).Append(pre.grad!).ToArray();
        for (int i = 0; i < plain.Length; i++)
            Assert.True(ckpt[i].Same(plain[i]), $"grad {i} differs, max |Δ| = {(ckpt[i] - plain[i]).abs().max().item<float>()}");
    }

    [Fact]
    public void RecomputesInBackwardAndHandlesInputsWithoutGrad()
    {
        using var block = new Block(4, 8, 12);
        var ps = block.parameters().ToArray();
        var (_, temb, ctx, pre) = Inputs(11);
        using var scope = torch.NewDisposeScope();
        var x = pre.detach(); // only the parameters need grad here (e.g. frozen latents into the first block)
        var unused = torch.ones(3).requires_grad_(true);
        int calls = 0;
        var y = GradientCheckpoint.Run(a => { calls++; return block.forward(a[0], a[1], a[2]); }, ps, x, temb, ctx, unused);
        Assert.Equal(1, calls);
        var target = torch.zeros_like(y);
        F.mse_loss(y, target).backward();
        Assert.Equal(2, calls); // the forward ran again inside backward
        var ckptGrads = ps.Select(p => p.grad!.clone()).ToArray();
        Assert.Null(unused.grad);
        foreach (var p in ps) p.grad = null;
        F.mse_loss(block.forward(x, temb, ctx), target).backward();
        for (int i = 0; i < ps.Length; i++)
            Assert.True(ps[i].grad!.Same(ckptGrads[i]), $"parameter {i} grad differs");
    }

    [Fact]
    public void FrozenParametersAndNoGradModeJustRunTheFunction()
    {
        using var block = new Block(4, 8, 12);
        var ps = block.parameters().ToArray();
        var (_, temb, ctx, pre) = Inputs(5);
        using var scope = torch.NewDisposeScope();
        Tensor plain;
        using (torch.no_grad()) plain = block.forward(pre, temb, ctx);
        using (torch.no_grad())
        {
            var y = GradientCheckpoint.Run(a => block.forward(a[0], a[1], a[2]), ps, pre, temb, ctx);
            Assert.False(y.requires_grad);
            Assert.True(y.Same(plain));
        }
        // Output equals plain forward in grad mode too.
        var y2 = GradientCheckpoint.Run(a => block.forward(a[0], a[1], a[2]), ps, pre, temb, ctx);
        Assert.True(y2.detach().Same(plain));
    }

    [Fact]
    public void LiveTensorCountStaysFlat()
    {
        using var block = new Block(4, 8, 12);
        var ps = block.parameters().ToArray();
        var (_, temb, ctx, pre) = Inputs(9);
        var counts = new List<long>();
        for (int it = 0; it < 6; it++)
        {
            using (torch.NewDisposeScope())
            {
                var y = GradientCheckpoint.Run(a => block.forward(a[0], a[1], a[2]), ps, pre * 1.5, temb, ctx);
                y.square().mean().backward();
            }
            foreach (var p in ps) { p.grad?.Dispose(); p.grad = null; }
            pre.grad?.Dispose();
            pre.grad = null;
            counts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.True(counts.Skip(2).All(c => c == counts[1]), "live tensors per iteration: " + string.Join(", ", counts));
    }
}
