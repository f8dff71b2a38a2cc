using DreamBooth.Loading;
using DreamBooth.Models.Common;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Models;

[Collection(DreamBooth.Tests.Infrastructure.CustomAutogradCollection.Name)]
public class UnetGradientCheckpointingTests
{
    static Dictionary<string, torch.Tensor> Grads(bool checkpointing, bool lora)
    {
        var unet = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        unet.train();
        LoraNetwork? net = null;
        if (lora)
        {
            foreach (var p in unet.parameters()) p.requires_grad = false;
            net = LoraNetwork.Attach(unet, "unet", 2, 2);
            var g0 = new torch.Generator().manual_seed(7);
            using (torch.no_grad()) foreach (var p in net.Parameters()) p.copy_(torch.randn(p.shape, generator: g0) * 0.1);
        }
        unet.GradientCheckpointing = checkpointing;
        var g = new torch.Generator().manual_seed(3);
        var x = torch.randn([2, 4, 16, 16], generator: g);
        var c = torch.randn([2, 77, 32], generator: g);
        var loss = unet.Forward(x, torch.tensor(new long[] { 10, 900 }), c).pow(2).mean();
        loss.backward();
        var named = lora ? net!.Adapters.SelectMany(a => new[] { (a.Path + ".down", a.Adapter.Down), (a.Path + ".up", a.Adapter.Up) })
                         : unet.named_parameters().Select(p => (p.name, p.parameter));
        return named.ToDictionary(p => p.Item1, p => p.Item2.grad!.clone());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CheckpointedGradientsEqualPlainGradients(bool lora)
    {
        var plain = Grads(false, lora);
        var ck = Grads(true, lora);
        Assert.Equal(plain.Keys.Order(), ck.Keys.Order());
        foreach (var (k, v) in plain)
            Assert.True(torch.allclose(v, ck[k], 1e-6, 1e-7), k);
        Assert.Contains(plain.Values, v => v.abs().sum().item<float>() > 0);
    }
}
